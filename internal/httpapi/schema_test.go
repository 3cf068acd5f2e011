package httpapi

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// schemaChecker validates decoded JSON against the subset of OpenAPI 3.0
// schemas that openapi.json uses: $ref to #/..., type (object, string,
// integer), required, properties, additionalProperties (false or a schema),
// enum and format date-time. A schema using any other keyword is reported
// as an error, so the checker cannot silently ignore what it does not know.
//
// allOf is taken too, for a $ref that carries a description of its own
// (OpenAPI 3.0 ignores a $ref's siblings). An object's required
// properties must be there; the others (readiness's checks, which depend
// on the configuration) may be absent.
type schemaChecker struct {
	doc map[string]any
}

// check returns every way v violates schema, each prefixed by the JSON path
// where it occurs.
func (c schemaChecker) check(at string, schema map[string]any, v any) []string {
	if ref, ok := schema["$ref"].(string); ok {
		target, err := c.resolve(ref)
		if err != nil {
			return []string{fmt.Sprintf("%s: %v", at, err)}
		}
		return c.check(at, target, v)
	}
	if all, ok := schema["allOf"].([]any); ok {
		var errs []string
		for _, sub := range all {
			if m, ok := sub.(map[string]any); ok {
				errs = append(errs, c.check(at, m, v)...)
			}
		}
		return errs
	}
	for k := range schema {
		switch k {
		case "type", "required", "properties", "additionalProperties", "enum", "format":
		case "description", "example": // annotations, no constraint
		default:
			return []string{fmt.Sprintf("%s: schema keyword %q not supported by the checker", at, k)}
		}
	}

	var errs []string
	switch typ := schema["type"]; typ {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %T, want object", at, v)}
		}
		errs = append(errs, c.checkObject(at, schema, obj)...)
	case "string":
		s, ok := v.(string)
		if !ok {
			return []string{fmt.Sprintf("%s: %T, want string", at, v)}
		}
		switch f := schema["format"]; f {
		case nil:
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not a date-time", at, s))
			}
		default:
			errs = append(errs, fmt.Sprintf("%s: format %v not supported by the checker", at, f))
		}
	case "integer":
		n, ok := v.(float64)
		if !ok || n != math.Trunc(n) {
			return []string{fmt.Sprintf("%s: %v, want integer", at, v)}
		}
	default:
		return []string{fmt.Sprintf("%s: type %v not supported by the checker", at, typ)}
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, v) {
		errs = append(errs, fmt.Sprintf("%s: %v not in enum %v", at, v, enum))
	}
	return errs
}

// checkObject applies the object keywords of schema to obj.
func (c schemaChecker) checkObject(at string, schema, obj map[string]any) []string {
	var errs []string
	props, _ := schema["properties"].(map[string]any)
	var required []string
	if req, ok := schema["required"].([]any); ok {
		for _, r := range req {
			required = append(required, fmt.Sprint(r))
		}
	}
	for _, name := range required {
		if _, ok := obj[name]; !ok {
			errs = append(errs, fmt.Sprintf("%s: required property %q missing", at, name))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(obj)) {
		val := obj[name]
		if ps, ok := props[name].(map[string]any); ok {
			errs = append(errs, c.check(at+"."+name, ps, val)...)
			continue
		}
		switch ap := schema["additionalProperties"].(type) {
		case bool:
			if !ap {
				errs = append(errs, fmt.Sprintf("%s: property %q not allowed", at, name))
			}
		case map[string]any:
			errs = append(errs, c.check(at+"."+name, ap, val)...)
		}
	}
	return errs
}

// resolve follows a local reference such as #/components/schemas/Error.
func (c schemaChecker) resolve(ref string) (map[string]any, error) {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("reference %q is not local", ref)
	}
	var node any = c.doc
	for _, part := range strings.Split(path, "/") {
		m, ok := node.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("reference %q: %q is not inside an object", ref, part)
		}
		node = m[part]
	}
	target, ok := node.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("reference %q does not resolve to an object", ref)
	}
	return target, nil
}
