module github.com/brainhq/brain/services/e2e

go 1.26.0

replace github.com/brainhq/brain/gen => ../../gen

replace github.com/brainhq/brain/services/kit => ../kit

replace github.com/brainhq/brain/services/memory => ../memory

require (
	github.com/brainhq/brain/gen v0.0.0
	github.com/brainhq/brain/services/kit v0.0.0
	github.com/brainhq/brain/services/memory v0.0.0
)

require (
	github.com/grpc-ecosystem/grpc-gateway/v2 v2.33.0 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/pgx/v5 v5.12.0 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/net v0.61.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261019180522-ce908d29299b // indirect
	google.golang.org/grpc v1.85.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
