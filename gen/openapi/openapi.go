// Package openapi embeds the OpenAPI (Swagger 2.0) document generated from
// the protos and proto/gateway.yaml, so each binary can serve it.
package openapi

import _ "embed"

// Document is the merged OpenAPI document of both services.
//
//go:embed brain.swagger.json
var Document []byte
