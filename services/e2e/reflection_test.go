package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"google.golang.org/grpc"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// reflector is a server-reflection client doing what grpcurl does: list
// services, and resolve a symbol to descriptors by fetching the file that
// defines it and, transitively, the files it imports.
type reflector struct {
	stream grpc.BidiStreamingClient[rpb.ServerReflectionRequest, rpb.ServerReflectionResponse]
	files  map[string]*descriptorpb.FileDescriptorProto
}

func newReflector(ctx context.Context, conn *grpc.ClientConn) (*reflector, error) {
	s, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("open reflection stream: %w", err)
	}
	return &reflector{stream: s, files: map[string]*descriptorpb.FileDescriptorProto{}}, nil
}

// close ends the stream and waits for the server to end it too.
func (r *reflector) close() error {
	if err := r.stream.CloseSend(); err != nil {
		return err
	}
	if _, err := r.stream.Recv(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("reflection stream did not end cleanly: %v", err)
	}
	return nil
}

func (r *reflector) ask(req *rpb.ServerReflectionRequest) (*rpb.ServerReflectionResponse, error) {
	if err := r.stream.Send(req); err != nil {
		return nil, fmt.Errorf("reflection send: %w", err)
	}
	resp, err := r.stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("reflection recv: %w", err)
	}
	if e := resp.GetErrorResponse(); e != nil {
		return nil, fmt.Errorf("reflection error %d: %s", e.GetErrorCode(), e.GetErrorMessage())
	}
	return resp, nil
}

// services lists the service names the server offers, sorted.
func (r *reflector) services() ([]string, error) {
	resp, err := r.ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	slices.Sort(names)
	return names, nil
}

func (r *reflector) addFiles(resp *rpb.ServerReflectionResponse) error {
	for _, raw := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
		fd := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(raw, fd); err != nil {
			return fmt.Errorf("file descriptor: %w", err)
		}
		r.files[fd.GetName()] = fd
	}
	return nil
}

// resolve fetches the file defining symbol and every file it imports, and
// returns the symbol's descriptor.
func (r *reflector) resolve(symbol string) (protoreflect.Descriptor, error) {
	resp, err := r.ask(&rpb.ServerReflectionRequest{
		MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol}})
	if err != nil {
		return nil, err
	}
	if err := r.addFiles(resp); err != nil {
		return nil, err
	}
	// The server sends imports it has not sent on this stream yet; fetch
	// any still missing by name, as grpcurl does.
	for {
		missing := ""
		for _, fd := range r.files {
			for _, dep := range fd.GetDependency() {
				if r.files[dep] == nil {
					missing = dep
				}
			}
		}
		if missing == "" {
			break
		}
		resp, err := r.ask(&rpb.ServerReflectionRequest{
			MessageRequest: &rpb.ServerReflectionRequest_FileByFilename{FileByFilename: missing}})
		if err != nil {
			return nil, fmt.Errorf("file %s: %w", missing, err)
		}
		before := len(r.files)
		if err := r.addFiles(resp); err != nil {
			return nil, err
		}
		if len(r.files) == before {
			return nil, fmt.Errorf("reflection did not return %s", missing)
		}
	}
	set := &descriptorpb.FileDescriptorSet{}
	for _, fd := range r.files {
		set.File = append(set.File, fd)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("build descriptors: %w", err)
	}
	return files.FindDescriptorByName(protoreflect.FullName(symbol))
}

// method resolves service/method to its descriptor.
func (r *reflector) method(service, method string) (protoreflect.MethodDescriptor, error) {
	d, err := r.resolve(service)
	if err != nil {
		return nil, err
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is a %T, not a service", service, d)
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, fmt.Errorf("service %s has no method %s", service, method)
	}
	return md, nil
}
