package dockerbottle

import "github.com/bottle-dev/bottle/auditlog"

// AuditDir is where this engine keeps audit files.
func (e *Engine) AuditDir() string { return e.auditDir }

// openAudit opens a session's audit file. It returns nil, which writes
// nothing, when that fails: the records still reach clients, and an
// unwritable state folder is logged, not a reason to refuse a bottle.
func (e *Engine) openAudit(session string) *auditlog.File {
	f, err := auditlog.Open(e.auditDir, session)
	if err != nil {
		e.log.Error("egress decisions are not kept on disk", "session", session, "dir", e.auditDir, "err", err)
		return nil
	}
	return f
}
