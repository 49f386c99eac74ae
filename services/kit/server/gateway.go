package server

import (
	"fmt"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// newGatewayMux returns the JSON gateway with Brain's conventions: unknown
// JSON fields are rejected (HTTP 400) rather than silently dropped, zero
// values are written (a client sees "degraded": false), the request id
// travels both ways as X-Request-Id, and a server stream is written as
// newline-delimited JSON, one {"result": ...} object per message. Unknown
// query parameters are rejected like unknown body fields.
func newGatewayMux() *runtime.ServeMux {
	return runtime.NewServeMux(
		runtime.SetQueryParameterParser(&strictQueryParser{}),
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

// strictQueryParser rejects query parameters that name no field of the
// request (HTTP 400), as unknown JSON body fields are: a typo such as
// ?pagesize=10 must not be silently ignored.
type strictQueryParser struct{ runtime.DefaultQueryParser }

func (p *strictQueryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	desc := msg.ProtoReflect().Descriptor()
	for key := range values {
		if !knownFieldPath(desc, key) {
			return fmt.Errorf("unknown query parameter %q", truncateKey(key))
		}
	}
	return p.DefaultQueryParser.Parse(msg, values, filter)
}

// knownFieldPath resolves a dotted field path (proto or JSON names, with an
// optional map key in brackets on the last element) against desc.
func knownFieldPath(desc protoreflect.MessageDescriptor, key string) bool {
	if i := strings.IndexByte(key, '['); i >= 0 {
		key = key[:i]
	}
	parts := strings.Split(key, ".")
	for i, name := range parts {
		fields := desc.Fields()
		fd := fields.ByName(protoreflect.Name(name))
		if fd == nil {
			fd = fields.ByJSONName(name)
		}
		if fd == nil {
			return false
		}
		if i < len(parts)-1 {
			if fd.Message() == nil || fd.IsList() || fd.IsMap() {
				return false
			}
			desc = fd.Message()
		}
	}
	return true
}

func truncateKey(k string) string {
	if len(k) > 64 {
		return k[:64] + "…"
	}
	return k
}
