package dockerbottle

import "github.com/docker/docker/client"

// Client is the engine's Engine API client, for tests that inspect what
// bottles made.
func (e *Engine) Client() *client.Client { return e.cli.(*client.Client) }
