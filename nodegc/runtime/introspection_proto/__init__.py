"""Generated stubs of containerd's introspection service (a subset); see generate.sh."""
