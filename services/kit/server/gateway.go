package server

import (
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/brainhq/brain/services/kit/badrequest"
)

// newGatewayMux returns the JSON gateway with Brain's conventions: unknown
// JSON fields are rejected (HTTP 400) rather than silently dropped, zero
// values are written (a client sees "degraded": false), the request id
// travels both ways as X-Request-Id, and a server stream is written as
// newline-delimited JSON, one {"result": ...} object per message. Unknown
// query parameters are rejected like unknown body fields, and path and query
// parameters that are not UTF-8 get 400 naming them.
func newGatewayMux() *runtime.ServeMux {
	var mux *runtime.ServeMux // the handlers below run after it is set
	mux = runtime.NewServeMux(
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
		runtime.WithMiddlewares(func(next runtime.HandlerFunc) runtime.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
				if err := checkParamsUTF8(pathParams, r.URL.RawQuery); err != nil {
					_, out := runtime.MarshalerForRequest(mux, r)
					runtime.HTTPError(r.Context(), mux, out, w, r, err)
					return
				}
				next(w, r, pathParams)
			}
		}),
	)
	return mux
}

// checkParamsUTF8 rejects path and query parameters that do not decode to
// UTF-8. Left alone they reach a proto3 string field, which the gateway's
// own gRPC client then refuses to marshal: INTERNAL, HTTP 500. The bad
// bytes are never echoed; the parameter is named as the client spelled it.
func checkParamsUTF8(pathParams map[string]string, rawQuery string) error {
	var v badrequest.Violations
	for _, name := range slices.Sorted(mapKeys(pathParams)) {
		if !utf8.ValidString(pathParams[name]) {
			v.Add(name, "path parameter must be valid UTF-8")
		}
	}
	if rawQuery != "" {
		// A malformed query is the handler's to reject (ParseForm); what
		// did parse is checked here.
		values, _ := url.ParseQuery(rawQuery)
		for _, key := range slices.Sorted(mapKeys(values)) {
			if v.Len() >= maxReported {
				break
			}
			if !utf8.ValidString(key) {
				v.Add(printable([]byte(key)), "query parameter name must be valid UTF-8")
				continue
			}
			for _, val := range values[key] {
				if !utf8.ValidString(val) {
					v.Add(key, "query parameter must be valid UTF-8")
					break
				}
			}
		}
	}
	return v.Err()
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
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
