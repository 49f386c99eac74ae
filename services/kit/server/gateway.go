package server

import (
	"net/textproto"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
)

// newGatewayMux returns the JSON gateway with Brain's conventions: unknown
// JSON fields are rejected (HTTP 400) rather than silently dropped, zero
// values are written (a client sees "degraded": false), the request id
// travels both ways as X-Request-Id, and a server stream is written as
// newline-delimited JSON, one {"result": ...} object per message.
func newGatewayMux() *runtime.ServeMux {
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
			Marshaler: &runtime.JSONPb{
				MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
				UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
			},
		}),
		runtime.WithIncomingHeaderMatcher(func(key string) (string, bool) {
			if strings.EqualFold(key, RequestIDHeader) {
				return RequestIDHeader, true
			}
			return runtime.DefaultHeaderMatcher(key)
		}),
		runtime.WithOutgoingHeaderMatcher(func(key string) (string, bool) {
			if strings.EqualFold(key, RequestIDHeader) {
				return textproto.CanonicalMIMEHeaderKey(RequestIDHeader), true
			}
			return runtime.MetadataHeaderPrefix + key, true
		}),
	)
}
