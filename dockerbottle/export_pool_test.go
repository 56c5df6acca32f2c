package dockerbottle

// PooledForTest is the bottles of the warm pool that wait, for tests that
// look inside one before a start takes it.
func (e *Engine) PooledForTest() []*Bottle {
	p := e.warm
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*Bottle
	for _, kp := range p.keys {
		for _, pb := range kp.ready {
			out = append(out, pb.bt)
		}
	}
	return out
}

// AgentID is the agent container's id.
func (bt *Bottle) AgentID() string { return bt.agentID }
