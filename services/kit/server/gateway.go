package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
// query parameters are rejected like unknown body fields, path and query
// parameters that are not UTF-8 get 400 naming them, JSON that does not
// decode says why, and a method a route does not serve gets 405 with Allow.
func newGatewayMux() *runtime.ServeMux {
	installQueryParser.Do(func() {
		runtime.NewServeMux(runtime.SetQueryParameterParser(&strictQueryParser{}))
	})
	var mux *runtime.ServeMux // the handlers below run after it is set
	mux = runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
			Marshaler: jsonCodec{&runtime.JSONPb{
				MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
				UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
			}},
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
		// routeProbe first: a probe must not run anything else.
		runtime.WithMiddlewares(routeProbe, func(next runtime.HandlerFunc) runtime.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
				if err := checkParamsUTF8(pathParams, r.URL.RawQuery); err != nil {
					_, out := runtime.MarshalerForRequest(mux, r)
					runtime.HTTPError(r.Context(), mux, out, w, r, err)
					return
				}
				next(w, r, pathParams)
			}
		}),
		runtime.WithRoutingErrorHandler(func(ctx context.Context, m *runtime.ServeMux, out runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
			routingError(ctx, m, out, w, r, code)
		}),
	)
	return mux
}

// installQueryParser sets the gateway's query parser once per process: the
// gateway keeps it in a package variable that its option writes whenever a
// mux is built, so building a second server while one serves requests (two
// in one process, as tests do) would race with every request's read of it.
var installQueryParser sync.Once

// checkParamsUTF8 rejects path and query parameters that do not decode to
// UTF-8. Left alone they reach a proto3 string field, which the gateway's
// own gRPC client then refuses to marshal: INTERNAL, HTTP 500. The bad
// bytes are never echoed; the parameter is named as the client spelled it.
func checkParamsUTF8(pathParams map[string]string, rawQuery string) error {
	var v badrequest.Violations
	for _, name := range slices.Sorted(maps.Keys(pathParams)) {
		if !utf8.ValidString(pathParams[name]) {
			v.Add(name, "path parameter must be valid UTF-8")
		}
	}
	if rawQuery != "" {
		// A malformed query is the handler's to reject (ParseForm); what
		// did parse is checked here.
		values, _ := url.ParseQuery(rawQuery)
		for _, key := range slices.Sorted(maps.Keys(values)) {
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

// probeKey marks a request that only asks whether a route matches (see
// allowedMethods); routeProbe answers it without running the handler.
type probeKey struct{}

func routeProbe(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
		if matched, ok := r.Context().Value(probeKey{}).(*bool); ok {
			*matched = true
			return
		}
		next(w, r, pathParams)
	}
}

// routingError answers a request no route takes. The gateway's default maps
// a known path with the wrong method to UNIMPLEMENTED, HTTP 501; HTTP says
// 405 with the methods the path does serve in Allow (RFC 9110, 15.5.6).
func routingError(ctx context.Context, mux *runtime.ServeMux, out runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	if _, probing := ctx.Value(probeKey{}).(*bool); probing {
		return // a probe of another method: no match, nothing to write
	}
	if code != http.StatusMethodNotAllowed {
		runtime.DefaultRoutingErrorHandler(ctx, mux, out, w, r, code)
		return
	}
	allowed := allowedMethods(mux, r)
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	runtime.HTTPError(ctx, mux, out, w, r, &runtime.HTTPStatusError{
		HTTPStatus: http.StatusMethodNotAllowed,
		Err: status.Errorf(codes.Unimplemented, "method %s is not allowed on %s; allowed: %s",
			printable([]byte(r.Method)), printable([]byte(r.URL.Path)), strings.Join(allowed, ", ")),
	})
}

// probedMethods are the methods a route of ours may serve.
var probedMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// allowedMethods asks mux, method by method, whether r's path has a route.
// The mux keeps its routing table private; a probe request walks it exactly
// as a real one would, and routeProbe stops it before any handler runs.
func allowedMethods(mux *runtime.ServeMux, r *http.Request) []string {
	var out []string
	for _, m := range probedMethods {
		if m == r.Method {
			continue
		}
		matched := false
		probe := r.Clone(context.WithValue(r.Context(), probeKey{}, &matched))
		probe.Method = m
		probe.Header = http.Header{} // no method override, no form fallback
		probe.Body = http.NoBody
		mux.ServeHTTP(discardWriter{}, probe)
		if matched {
			out = append(out, m)
		}
	}
	return out
}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}

// jsonCodec is the gateway's JSON marshaler, except that a body protojson
// refuses is explained where protojson is not: a lone UTF-16 surrogate
// ("\ud800"), valid JSON syntax but no character, makes it say
// "unexpected EOF".
type jsonCodec struct{ *runtime.JSONPb }

func (c jsonCodec) Unmarshal(data []byte, v any) error {
	if err := c.JSONPb.Unmarshal(data, v); err != nil {
		return explainJSON(data, err)
	}
	return nil
}

func (c jsonCodec) NewDecoder(r io.Reader) runtime.Decoder {
	d := json.NewDecoder(r)
	return runtime.DecoderFunc(func(v any) error {
		p, ok := v.(proto.Message)
		if !ok { // a body bound to one field: the gateway's own path
			return runtime.DecoderWrapper{Decoder: d, UnmarshalOptions: c.UnmarshalOptions}.Decode(v)
		}
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return err // io.EOF (no body) included, as the gateway expects
		}
		if err := c.UnmarshalOptions.Unmarshal(raw, p); err != nil {
			return explainJSON(raw, err)
		}
		return nil
	})
}

// explainJSON returns a clearer error than err for data, syntactically valid
// JSON that protojson refused, when it can tell what is wrong.
func explainJSON(data []byte, err error) error {
	if esc, at, ok := loneSurrogate(data); ok {
		return fmt.Errorf("invalid JSON: lone UTF-16 surrogate %s in a string at byte %d (a surrogate must be half of a \\uD800-\\uDBFF \\uDC00-\\uDFFF pair)", esc, at)
	}
	return err
}

// loneSurrogate finds the first \u escape of a UTF-16 surrogate that is not
// a high one followed at once by a low one. data must be valid JSON, so
// every backslash is inside a string and starts an escape.
func loneSurrogate(data []byte) (esc string, at int, ok bool) {
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' || i+1 >= len(data) {
			continue
		}
		if data[i+1] != 'u' {
			i++ // a two-byte escape such as \\ or \"
			continue
		}
		r, n := hex4(data, i)
		if n == 0 {
			continue
		}
		switch {
		case r >= 0xD800 && r <= 0xDBFF:
			if lo, m := hex4(data, i+6); m > 0 && lo >= 0xDC00 && lo <= 0xDFFF {
				i += 11 // the pair
				continue
			}
			return string(data[i : i+6]), i, true
		case r >= 0xDC00 && r <= 0xDFFF:
			return string(data[i : i+6]), i, true
		}
		i += 5
	}
	return "", 0, false
}

// hex4 decodes the \uXXXX escape at data[i:], returning n = 0 when there is none.
func hex4(data []byte, i int) (rune, int) {
	if i+6 > len(data) || data[i] != '\\' || data[i+1] != 'u' {
		return 0, 0
	}
	var r rune
	for _, c := range data[i+2 : i+6] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, 0
		}
	}
	return r, 6
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
