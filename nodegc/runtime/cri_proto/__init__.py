"""Generated CRI v1 stubs (a subset of k8s.io/cri-api's api.proto); see generate.sh."""
