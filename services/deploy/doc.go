// Package deploy holds no code: its tests check the deployment files at the
// repository root (Dockerfile, .dockerignore, compose.yaml, deploy/) the way
// their consumers read them — compose-spec's loader, the Kubernetes API types,
// Prometheus' and Grafana's file formats — so a broken probe, gate or secret
// fails `go test` instead of a rollout.
package deploy
