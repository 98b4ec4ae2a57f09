// Package strictyaml decodes the project's configuration files (the gate
// policy, the preflight policy) one way: one YAML document, unknown fields
// rejected, errors that say the line (go.yaml.in/yaml/v3 with KnownFields).
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// ErrMoreThanOneDocument is returned when b holds a second YAML document.
var ErrMoreThanOneDocument = errors.New("more than one YAML document; a policy is one")

// Decode decodes the single YAML document of b into out, rejecting fields
// out does not have. An empty b leaves out as it is. Errors are yaml.v3's
// (a *yaml.TypeError names each line), or ErrMoreThanOneDocument.
func Decode(b []byte, out any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return ErrMoreThanOneDocument
	}
	return nil
}

// Load reads the file at path and hands its bytes to parse; errors are
// "policy file: ..." when it cannot be read and "policy file PATH: ..."
// when parse fails.
func Load[T any](path string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	b, err := os.ReadFile(path)
	if err != nil {
		return zero, fmt.Errorf("policy file: %w", err)
	}
	v, err := parse(b)
	if err != nil {
		return zero, fmt.Errorf("policy file %s: %w", path, err)
	}
	return v, nil
}
