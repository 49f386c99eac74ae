package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"unicode/utf8"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/brainhq/brain/services/kit/badrequest"
)

// Why this file exists: grpc-go decodes a request inside the generated
// handler, before any interceptor runs, and turns every codec error into
// INTERNAL ("grpc: failed to unmarshal the received message"), with no
// server option to keep a code of our own. A request that does not decode
// (a proto3 string that is not UTF-8, say, which Python or a hand-rolled
// client can send) is the caller's fault, and our contract answers
// INVALID_ARGUMENT naming the field. So the codec below, when a request does
// not decode, hands grpc an empty message carrying the finished status as a
// marker, and interceptors installed with it turn the marker into the error.

// markerNumber is the field number of the marker: the largest valid one, so
// no message of ours declares it and it lands in the unknown fields.
const markerNumber = protowire.MaxValidNumber

// maxReported bounds the fields one error names, so a request full of bad
// strings cannot inflate the status beyond what trailers carry.
const maxReported = 10

// requestCodec is the standard proto codec, except that a request that does
// not decode becomes an empty message carrying an INVALID_ARGUMENT status.
type requestCodec struct {
	base encoding.CodecV2
	// nonce proves a marker was written by this process: a client could send
	// the marker field itself to make the server answer a status of its
	// choosing; without the nonce it stays an ordinary unknown field.
	nonce [16]byte
}

// decodeErrorOptions installs the codec and the interceptors that reject
// what it marks. They come together so the codec can never run without them
// (the handler would then see an empty request). Append them after the other
// interceptor chains: they run innermost, so a rejection is logged and
// counted like any other error.
func decodeErrorOptions() []grpc.ServerOption {
	c := &requestCodec{base: encoding.GetCodecV2(protoenc.Name)}
	_, _ = rand.Read(c.nonce[:]) // never fails (it crashes the process instead)
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(c),
		grpc.ChainUnaryInterceptor(c.unary),
		grpc.ChainStreamInterceptor(c.stream),
	}
}

func (c *requestCodec) Name() string { return c.base.Name() }

func (c *requestCodec) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

// Unmarshal is the standard codec's; only when that fails does it look at
// the bytes again to say what is wrong.
func (c *requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.base.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m := messageOf(v)
	if m == nil {
		return err // not a request of ours: a server bug, INTERNAL is right
	}
	st := diagnose(data.Materialize(), m.ProtoReflect().Descriptor(), err)
	raw, merr := proto.Marshal(st.Proto())
	if merr != nil {
		return fmt.Errorf("%w (and marking it failed: %v)", err, merr)
	}
	marker := protowire.AppendTag(nil, markerNumber, protowire.BytesType)
	marker = protowire.AppendVarint(marker, uint64(len(c.nonce)+len(raw)))
	marker = append(append(marker, c.nonce[:]...), raw...)
	proto.Reset(m)
	m.ProtoReflect().SetUnknown(marker)
	return nil
}

// rejection returns the status the codec marked req with, removing the
// marker, or nil for a request that decoded. Since the codec resets the
// message, a marker is the whole of the unknown fields.
func (c *requestCodec) rejection(req any) error {
	m := messageOf(req)
	if m == nil {
		return nil
	}
	r := m.ProtoReflect()
	u := r.GetUnknown()
	if len(u) == 0 {
		return nil
	}
	num, typ, n := protowire.ConsumeTag(u)
	if n < 0 || num != markerNumber || typ != protowire.BytesType {
		return nil
	}
	v, m2 := protowire.ConsumeBytes(u[n:])
	if m2 < 0 || n+m2 != len(u) || len(v) < len(c.nonce) || string(v[:len(c.nonce)]) != string(c.nonce[:]) {
		return nil
	}
	r.SetUnknown(nil)
	var sp spb.Status
	if err := proto.Unmarshal(v[len(c.nonce):], &sp); err != nil {
		return status.Error(codes.InvalidArgument, "invalid request: message does not decode")
	}
	return status.ErrorProto(&sp)
}

func (c *requestCodec) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := c.rejection(req); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (c *requestCodec) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, &rejectingStream{ServerStream: ss, c: c})
}

// rejectingStream fails RecvMsg for a message the codec marked.
type rejectingStream struct {
	grpc.ServerStream
	c *requestCodec
}

func (s *rejectingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.c.rejection(m)
}

func messageOf(v any) proto.Message {
	switch v := v.(type) {
	case protoadapt.MessageV2:
		return v
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(v)
	}
	return nil
}

// diagnose says what is wrong with b, a message of type md that failed to
// decode with err: the fields holding invalid UTF-8 or the field whose wire
// data is malformed, in the field-path form of our validators
// (episodes[0].metadata[key]); failing that, err itself.
func diagnose(b []byte, md protoreflect.MessageDescriptor, err error) *status.Status {
	var s scanner
	s.message(b, md, "", 0)
	var v badrequest.Violations
	switch {
	case s.broken && s.brokenAt != "":
		v.Add(s.brokenAt, "is not valid protobuf wire format")
	case !s.broken:
		for _, p := range s.notUTF8 {
			v.Add(p, "must be valid UTF-8")
		}
	}
	if v.Len() > 0 {
		st, _ := status.FromError(v.Err())
		return st
	}
	return status.Newf(codes.InvalidArgument, "invalid request: not a valid %s message: %v", md.FullName(), err)
}

// scanner walks wire data guided by a descriptor, recording the first place
// it stops parsing and the strings that are not valid UTF-8.
type scanner struct {
	notUTF8  []string
	broken   bool
	brokenAt string // path of the message or field that stopped parsing
}

func (s *scanner) done() bool { return s.broken || len(s.notUTF8) >= maxReported }

func (s *scanner) fail(path string) { s.broken, s.brokenAt = true, path }

func (s *scanner) text(path string, fd protoreflect.FieldDescriptor, v []byte) {
	if !enforceUTF8(fd) || utf8.Valid(v) || len(s.notUTF8) >= maxReported {
		return
	}
	for _, p := range s.notUTF8 {
		if p == path { // a field sent twice
			return
		}
	}
	s.notUTF8 = append(s.notUTF8, path)
}

// message scans b as a message of type md found at path ("" for the request).
func (s *scanner) message(b []byte, md protoreflect.MessageDescriptor, path string, depth int) {
	if depth > protowire.DefaultRecursionLimit {
		return // proto.Unmarshal refused it for this; diagnose falls back to its error
	}
	var seen map[protowire.Number]int // elements so far of each repeated field
	for len(b) > 0 && !s.done() {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			s.fail(path)
			return
		}
		fd := md.Fields().ByNumber(num)
		fpath := path
		if fd != nil {
			fpath = join(path, string(fd.Name()))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			s.fail(fpath)
			return
		}
		val := b[n : n+m]
		b = b[n+m:]
		// A wire type other than bytes is an unknown field to proto.Unmarshal
		// (or a packed scalar, which holds no text).
		if fd == nil || typ != protowire.BytesType {
			continue
		}
		if fd.IsList() {
			if seen == nil {
				seen = make(map[protowire.Number]int)
			}
			fpath += "[" + strconv.Itoa(seen[num]) + "]"
			seen[num]++
		}
		v, _ := protowire.ConsumeBytes(val)
		switch {
		case fd.IsMap():
			s.mapEntry(v, fd, fpath, depth+1)
		case fd.Kind() == protoreflect.StringKind:
			s.text(fpath, fd, v)
		case fd.Kind() == protoreflect.MessageKind:
			s.message(v, fd.Message(), fpath, depth+1)
		}
	}
}

// mapEntry scans one entry of map field fd at path: a bad key is reported
// as path.key and a bad value as path[key], as our validators name them.
func (s *scanner) mapEntry(b []byte, fd protoreflect.FieldDescriptor, path string, depth int) {
	kd, vd := fd.MapKey(), fd.MapValue()
	type field struct {
		num protowire.Number
		typ protowire.Type
		val []byte
	}
	var fields []field
	key := field{typ: -1} // missing: the zero value
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			s.fail(path)
			return
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			s.fail(path)
			return
		}
		f := field{num, typ, b[n : n+m]}
		b = b[n+m:]
		if num == kd.Number() {
			key = f // the last one wins, as in proto.Unmarshal
		}
		fields = append(fields, f)
	}
	var keyText string
	if kd.Kind() == protoreflect.StringKind && key.typ == protowire.BytesType {
		k, _ := protowire.ConsumeBytes(key.val)
		s.text(path+".key", kd, k)
		keyText = printable(k)
	} else {
		keyText = scalarText(kd, key.typ, key.val)
	}
	vpath := path + "[" + keyText + "]"
	for _, f := range fields {
		if f.num != vd.Number() || f.typ != protowire.BytesType || s.done() {
			continue
		}
		v, _ := protowire.ConsumeBytes(f.val)
		switch vd.Kind() {
		case protoreflect.StringKind:
			s.text(vpath, vd, v)
		case protoreflect.MessageKind:
			s.message(v, vd.Message(), vpath, depth+1)
		}
	}
}

// scalarText formats a non-string map key; a missing key or one of the
// wrong wire type reads as the zero value, as proto.Unmarshal treats it.
func scalarText(kd protoreflect.FieldDescriptor, typ protowire.Type, val []byte) string {
	var x uint64
	switch typ {
	case protowire.VarintType:
		x, _ = protowire.ConsumeVarint(val)
	case protowire.Fixed32Type:
		v, _ := protowire.ConsumeFixed32(val)
		x = uint64(v)
	case protowire.Fixed64Type:
		x, _ = protowire.ConsumeFixed64(val)
	}
	if typ != wireTypeOf(kd.Kind()) {
		x = 0
	}
	switch kd.Kind() {
	case protoreflect.BoolKind:
		return strconv.FormatBool(x != 0)
	case protoreflect.Int32Kind, protoreflect.Sfixed32Kind:
		return strconv.FormatInt(int64(int32(x)), 10)
	case protoreflect.Sint32Kind:
		return strconv.FormatInt(int64(int32(protowire.DecodeZigZag(x&0xffffffff))), 10)
	case protoreflect.Sint64Kind:
		return strconv.FormatInt(protowire.DecodeZigZag(x), 10)
	case protoreflect.Int64Kind, protoreflect.Sfixed64Kind:
		return strconv.FormatInt(int64(x), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return strconv.FormatUint(uint64(uint32(x)), 10)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(x, 10)
	}
	return "" // a string key that is missing
}

func wireTypeOf(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
		return protowire.Fixed64Type
	case protoreflect.StringKind:
		return protowire.BytesType
	}
	return protowire.VarintType
}

// printable keeps a map key short and printable in a field path, the way
// the services' validators do: at most 32 bytes, control characters and
// invalid bytes as '?'.
func printable(b []byte) string {
	const n = 32
	if len(b) > n {
		b = b[:n]
	}
	out := make([]rune, 0, len(b))
	for _, r := range string(b) {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			r = '?'
		}
		out = append(out, r)
	}
	return string(out)
}

// enforceUTF8 reports whether proto.Unmarshal rejects invalid UTF-8 in fd:
// proto3 strings, and editions strings unless their features say otherwise
// (the descriptor implementation answers that; protobuf-go's rule).
func enforceUTF8(fd protoreflect.FieldDescriptor) bool {
	if fd.Syntax() == protoreflect.Editions {
		if e, ok := fd.(interface{ EnforceUTF8() bool }); ok {
			return e.EnforceUTF8()
		}
	}
	return fd.Syntax() == protoreflect.Proto3
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
