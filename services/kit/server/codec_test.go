package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
)

// rawCodec sends requests given as []byte as they are: a Go client refuses
// to marshal invalid UTF-8, a Python one or a hand-rolled one does not.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec sends []byte, got %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

func (rawCodec) Name() string { return "proto" }

// memoryStub counts the calls that reached it and echoes what it got.
type memoryStub struct {
	memoryv1.UnimplementedMemoryServiceServer
	calls atomic.Int32
}

func (m *memoryStub) Recall(_ context.Context, req *memoryv1.RecallRequest) (*memoryv1.RecallResponse, error) {
	m.calls.Add(1)
	return &memoryv1.RecallResponse{DegradedReason: "query=" + req.GetQuery()}, nil
}

func (m *memoryStub) WriteEpisodes(_ context.Context, req *memoryv1.WriteEpisodesRequest) (*memoryv1.WriteEpisodesResponse, error) {
	m.calls.Add(1)
	return &memoryv1.WriteEpisodesResponse{Episodes: req.GetEpisodes()}, nil
}

// duplexEcho answers each FullDuplexCall message with one response.
type duplexEcho struct {
	testpb.UnimplementedTestServiceServer
}

func (duplexEcho) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		if _, err := stream.Recv(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
	}
}

// num is the number of field name in m's message type.
func num(m proto.Message, name string) protowire.Number {
	fd := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		panic(fmt.Sprintf("%T has no field %s", m, name))
	}
	return fd.Number()
}

// field encodes one length-delimited field.
func field(n protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, n, protowire.BytesType), v)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

const bad = "a\xffb" // not UTF-8

var (
	recallReq = &memoryv1.RecallRequest{}
	writeReq  = &memoryv1.WriteEpisodesRequest{}
	ep        = &memoryv1.Episode{}
)

// episode encodes an Episode with the given content and metadata entries.
func episode(content string, meta ...[2]string) []byte {
	b := field(num(ep, "namespace"), []byte("ns"))
	b = append(b, field(num(ep, "content"), []byte(content))...)
	for _, kv := range meta {
		b = append(b, field(num(ep, "metadata"), cat(field(1, []byte(kv[0])), field(2, []byte(kv[1]))))...)
	}
	return b
}

func badRequestFields(err error) []string {
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				fields = append(fields, fv.GetField())
			}
		}
	}
	return fields
}

func TestUndecodableRequestsAreInvalidArgument(t *testing.T) {
	stub := &memoryStub{}
	r := start(t, Config{Name: "test"}, func(s *Server) {
		memoryv1.RegisterMemoryServiceServer(s.GRPC(), stub)
		testpb.RegisterTestServiceServer(s.GRPC(), duplexEcho{})
	})
	conn := dial(t, r.srv.GRPCAddr())

	forged := mustMarshal(&spb.Status{Code: int32(codes.PermissionDenied), Message: "forged"})
	tests := []struct {
		name       string
		method     string
		req        []byte
		wantCode   codes.Code
		wantFields []string // BadRequest field violations, in order
		wantMsg    string   // substring of the status message
	}{
		{
			name:     "valid request is served",
			method:   memoryv1.MemoryService_Recall_FullMethodName,
			req:      mustMarshal(&memoryv1.RecallRequest{Namespace: "ns", Query: "héllo"}),
			wantCode: codes.OK,
		},
		{
			name:     "top-level string",
			method:   memoryv1.MemoryService_Recall_FullMethodName,
			req:      cat(field(num(recallReq, "namespace"), []byte("ns")), field(num(recallReq, "query"), []byte(bad))),
			wantCode: codes.InvalidArgument, wantFields: []string{"query"},
			wantMsg: "invalid request: query: must be valid UTF-8",
		},
		{
			name:   "every bad field is named",
			method: memoryv1.MemoryService_Recall_FullMethodName,
			// The same field sent twice is named once.
			req: cat(field(num(recallReq, "namespace"), []byte(bad)), field(num(recallReq, "query"), []byte(bad)),
				field(num(recallReq, "query"), []byte(bad))),
			wantCode: codes.InvalidArgument, wantFields: []string{"namespace", "query"},
			wantMsg: "namespace: must be valid UTF-8; query: must be valid UTF-8",
		},
		{
			name:   "string in a repeated message",
			method: memoryv1.MemoryService_WriteEpisodes_FullMethodName,
			req: cat(field(num(writeReq, "episodes"), episode("fine")),
				field(num(writeReq, "episodes"), episode(bad))),
			wantCode: codes.InvalidArgument, wantFields: []string{"episodes[1].content"},
			wantMsg: "episodes[1].content: must be valid UTF-8",
		},
		{
			name:     "map value",
			method:   memoryv1.MemoryService_WriteEpisodes_FullMethodName,
			req:      field(num(writeReq, "episodes"), episode("fine", [2]string{"ok", "fine"}, [2]string{"mood", bad})),
			wantCode: codes.InvalidArgument, wantFields: []string{"episodes[0].metadata[mood]"},
		},
		{
			name:     "map key",
			method:   memoryv1.MemoryService_WriteEpisodes_FullMethodName,
			req:      field(num(writeReq, "episodes"), episode("fine", [2]string{bad, "fine"})),
			wantCode: codes.InvalidArgument, wantFields: []string{"episodes[0].metadata.key"},
		},
		{
			name:   "malformed nested field",
			method: memoryv1.MemoryService_WriteEpisodes_FullMethodName,
			// content claims 100 bytes and has 3.
			req: field(num(writeReq, "episodes"), cat(field(num(ep, "namespace"), []byte("ns")),
				protowire.AppendVarint(protowire.AppendTag(nil, num(ep, "content"), protowire.BytesType), 100), []byte("abc"))),
			wantCode: codes.InvalidArgument, wantFields: []string{"episodes[0].content"},
			wantMsg: "episodes[0].content: is not valid protobuf wire format",
		},
		{
			name:     "garbage",
			method:   memoryv1.MemoryService_Recall_FullMethodName,
			req:      []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
			wantCode: codes.InvalidArgument,
			wantMsg:  "invalid request: not a valid brain.memory.v1.RecallRequest message",
		},
		{
			name:     "unknown fields of a valid request are ignored",
			method:   memoryv1.MemoryService_Recall_FullMethodName,
			req:      cat(mustMarshal(&memoryv1.RecallRequest{Namespace: "ns", Query: "q"}), field(1000, []byte(bad))),
			wantCode: codes.OK,
		},
		{
			name:   "a client cannot forge the marker",
			method: memoryv1.MemoryService_Recall_FullMethodName,
			req: cat(mustMarshal(&memoryv1.RecallRequest{Namespace: "ns", Query: "q"}),
				field(markerNumber, cat(make([]byte, 16), forged))),
			wantCode: codes.OK,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			before := stub.calls.Load()
			var resp proto.Message = &memoryv1.RecallResponse{}
			if tc.method == memoryv1.MemoryService_WriteEpisodes_FullMethodName {
				resp = &memoryv1.WriteEpisodesResponse{}
			}
			err := conn.Invoke(ctx, tc.method, tc.req, resp, grpc.ForceCodecV2(rawCodec{}))
			st := status.Convert(err)
			if st.Code() != tc.wantCode {
				t.Fatalf("code = %v (%v), want %v", st.Code(), err, tc.wantCode)
			}
			if !strings.Contains(st.Message(), tc.wantMsg) {
				t.Errorf("message %q does not contain %q", st.Message(), tc.wantMsg)
			}
			if got, want := strings.Join(badRequestFields(err), ","), strings.Join(tc.wantFields, ","); got != want {
				t.Errorf("BadRequest fields = %q, want %q", got, want)
			}
			called := stub.calls.Load() != before
			if called != (tc.wantCode == codes.OK) {
				t.Errorf("handler called = %v for code %v", called, st.Code())
			}
		})
	}

	// The handler saw the valid request intact.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := memoryv1.NewMemoryServiceClient(conn).Recall(ctx, &memoryv1.RecallRequest{Namespace: "ns", Query: "still here"})
	if err != nil || got.GetDegradedReason() != "query=still here" {
		t.Fatalf("after the bad requests: %v, %v", got, err)
	}

	// A client stream: good messages flow, a bad one ends the call with
	// INVALID_ARGUMENT naming the nested field.
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true},
		"/grpc.testing.TestService/FullDuplexCall", grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	sreq := &testpb.StreamingOutputCallRequest{}
	good := mustMarshal(&testpb.StreamingOutputCallRequest{ResponseStatus: &testpb.EchoStatus{Message: "fine"}})
	for i := 0; i < 2; i++ {
		if err := stream.SendMsg(good); err != nil {
			t.Fatal(err)
		}
		if err := stream.RecvMsg(&testpb.StreamingOutputCallResponse{}); err != nil {
			t.Fatalf("good stream message %d: %v", i, err)
		}
	}
	if err := stream.SendMsg(field(num(sreq, "response_status"), field(num(&testpb.EchoStatus{}, "message"), []byte(bad)))); err != nil {
		t.Fatal(err)
	}
	err = stream.RecvMsg(&testpb.StreamingOutputCallResponse{})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || strings.Join(badRequestFields(err), ",") != "response_status.message" {
		t.Fatalf("bad stream message answered %v", err)
	}

	// The rejections went through the usual interceptors: counted by code.
	if code, body := httpGet(t, "http://"+r.srv.HTTPAddr()+"/metrics"); code != 200 ||
		!strings.Contains(body, `grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="Recall"`) ||
		!strings.Contains(body, `grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="FullDuplexCall"`) {
		t.Fatalf("/metrics = %d, rejections not counted as InvalidArgument", code)
	}
}

// keyedMaps is a proto3 message with maps keyed by each kind of scalar
// that needs its own formatting, built at run time since no generated type
// has them: by_int64 = 1, by_sint32 = 2, by_bool = 3, by_sfixed32 = 4.
func keyedMaps(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	kinds := []descriptorpb.FieldDescriptorProto_Type{
		descriptorpb.FieldDescriptorProto_TYPE_INT64,
		descriptorpb.FieldDescriptorProto_TYPE_SINT32,
		descriptorpb.FieldDescriptorProto_TYPE_BOOL,
		descriptorpb.FieldDescriptorProto_TYPE_SFIXED32,
	}
	names := []string{"by_int64", "by_sint32", "by_bool", "by_sfixed32"}
	entries := []string{"ByInt64Entry", "BySint32Entry", "ByBoolEntry", "BySfixed32Entry"}
	msg := &descriptorpb.DescriptorProto{Name: proto.String("M")}
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	for i, k := range kinds {
		msg.Field = append(msg.Field, &descriptorpb.FieldDescriptorProto{
			Name: proto.String(names[i]), Number: proto.Int32(int32(i + 1)),
			Label:    descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum(),
			Type:     descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(),
			TypeName: proto.String(".t.M." + entries[i]),
		})
		msg.NestedType = append(msg.NestedType, &descriptorpb.DescriptorProto{
			Name: proto.String(entries[i]),
			Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("key"), Number: proto.Int32(1), Label: &opt, Type: k.Enum()},
				{Name: proto.String("value"), Number: proto.Int32(2), Label: &opt, Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()},
			},
			Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
		})
	}
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name: proto.String("t.proto"), Package: proto.String("t"), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{msg},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().ByName("M")
}

func TestDiagnose(t *testing.T) {
	keyed := keyedMaps(t)
	entry := func(n protowire.Number, key []byte) []byte {
		return field(n, cat(key, field(2, []byte(bad))))
	}
	varint := func(n protowire.Number, x uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, n, protowire.VarintType), x)
	}
	stats := &testpb.LoadBalancerStatsResponse{}
	ids := num(&memoryv1.RecordAccessRequest{}, "ids")
	manyBad := []byte{}
	for i := 0; i < maxReported+5; i++ {
		manyBad = append(manyBad, field(ids, []byte(bad))...)
	}
	var manyWant []string
	for i := 0; i < maxReported; i++ {
		manyWant = append(manyWant, fmt.Sprintf("ids[%d]", i))
	}
	tests := []struct {
		name       string
		md         protoreflect.MessageDescriptor
		b          []byte
		wantFields []string
		wantMsg    string
	}{
		{"int64 key", keyed, entry(1, varint(1, 42)), []string{"by_int64[42]"}, ""},
		{"sint32 key", keyed, entry(2, varint(1, protowire.EncodeZigZag(-3))), []string{"by_sint32[-3]"}, ""},
		{"bool key", keyed, entry(3, varint(1, 1)), []string{"by_bool[true]"}, ""},
		{"sfixed32 key", keyed, entry(4, protowire.AppendFixed32(protowire.AppendTag(nil, 1, protowire.Fixed32Type), uint32(0xfffffff9))), []string{"by_sfixed32[-7]"}, ""},
		{"missing key", keyed, entry(1, nil), []string{"by_int64[0]"}, ""},
		{"key of the wrong wire type", keyed, entry(1, field(1, []byte("x"))), []string{"by_int64[0]"}, ""},
		{
			"map of messages, key made printable",
			stats.ProtoReflect().Descriptor(),
			field(num(stats, "rpcs_by_method"), cat(field(1, []byte("m\n")), field(2, field(1, cat(field(1, []byte(bad)), varint(2, 1)))))),
			[]string{"rpcs_by_method[m?].rpcs_by_peer.key"}, "",
		},
		{"at most maxReported fields", (&memoryv1.RecordAccessRequest{}).ProtoReflect().Descriptor(), manyBad, manyWant, ""},
		{
			"nothing found falls back to the error",
			recallReq.ProtoReflect().Descriptor(),
			mustMarshal(&memoryv1.RecallRequest{Query: "fine"}),
			nil, "invalid request: not a valid brain.memory.v1.RecallRequest message: boom",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := diagnose(tc.b, tc.md, errors.New("boom"))
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("code = %v, want InvalidArgument", st.Code())
			}
			if got, want := strings.Join(badRequestFields(st.Err()), ","), strings.Join(tc.wantFields, ","); got != want {
				t.Errorf("fields = %q, want %q", got, want)
			}
			if !strings.Contains(st.Message(), tc.wantMsg) {
				t.Errorf("message %q does not contain %q", st.Message(), tc.wantMsg)
			}
		})
	}
}

// A target that is not a proto message is a server bug: the error stays.
func TestCodecKeepsErrorForNonProtoTarget(t *testing.T) {
	c := &requestCodec{base: encoding.GetCodecV2(protoenc.Name)}
	var target struct{}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0xff})}, &target); err == nil {
		t.Fatal("Unmarshal into a non-message succeeded")
	}
}

// BenchmarkDecode compares the happy path with grpc's own codec: it should
// cost the same plus the unknown-fields check.
func BenchmarkDecode(b *testing.B) {
	base := encoding.GetCodecV2(protoenc.Name)
	c := &requestCodec{base: base}
	data := mem.BufferSlice{mem.SliceBuffer(mustMarshal(&memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{
		{Namespace: "ns", Content: strings.Repeat("remember this ", 40), Metadata: map[string]string{"k": "v"}},
	}}))}
	b.Run("grpc", func(b *testing.B) {
		for b.Loop() {
			if err := base.Unmarshal(data, &memoryv1.WriteEpisodesRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("request codec and check", func(b *testing.B) {
		for b.Loop() {
			m := &memoryv1.WriteEpisodesRequest{}
			if err := c.Unmarshal(data, m); err != nil {
				b.Fatal(err)
			}
			if err := c.rejection(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
