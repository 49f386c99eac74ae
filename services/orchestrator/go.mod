module github.com/brainhq/brain/services/orchestrator

go 1.26.0

replace github.com/brainhq/brain/gen => ../../gen

replace github.com/brainhq/brain/services/kit => ../kit

require (
	github.com/brainhq/brain/gen v0.0.0
	github.com/brainhq/brain/services/kit v0.0.0
)

require (
	go.uber.org/goleak v1.3.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	go.uber.org/zap v1.28.0 // indirect
	golang.org/x/net v0.61.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261019180522-ce908d29299b // indirect
	google.golang.org/grpc v1.85.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
