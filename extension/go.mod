// This file keeps extension/ (and Go files that npm packages ship in its
// node_modules) out of the bottle module: go vet, staticcheck and go test ./...
// would otherwise pick them up.
module github.com/bottle-dev/bottle/extension
