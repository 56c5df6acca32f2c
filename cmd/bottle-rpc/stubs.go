package main

import "context"

func serve(ctx context.Context, args []string) int { return fail("serve: not yet wired") }
func run(ctx context.Context, args []string) int   { return fail("run: not yet wired") }
