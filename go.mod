module github.com/bottle-dev/bottle

go 1.26.8

require (
	github.com/creack/pty v1.1.24 // indirect
	github.com/docker/docker v28.5.2+incompatible // indirect
	github.com/segmentio/asm v1.1.3 // indirect
	github.com/segmentio/encoding v0.3.4 // indirect
	go.lsp.dev/jsonrpc2 v0.10.0 // indirect
	golang.org/x/sys v0.0.0-20211110154304-99a53858aa08 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
