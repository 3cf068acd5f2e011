package kafkasink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Security says how to reach a secured cluster: Kafka's security.protocol,
// with its TLS and SASL settings. The zero value is PLAINTEXT.
type Security struct {
	// Protocol is PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL.
	Protocol string
	// Mechanism is the SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string
	// Username and Password are the SASL credentials.
	Username, Password string
	// CAFile is a PEM file of CAs to trust instead of the system's roots.
	CAFile string
	// CertFile and KeyFile are an optional PEM client certificate and key.
	CertFile, KeyFile string
	// ServerName overrides the host name verified in the brokers'
	// certificates.
	ServerName string
}

// Protocols and mechanisms accepted in Security.
var (
	Protocols  = []string{"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}
	Mechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
)

// UsesTLS reports whether the protocol encrypts.
func (s Security) UsesTLS() bool {
	p := strings.ToUpper(s.Protocol)
	return p == "SSL" || p == "SASL_SSL"
}

// UsesSASL reports whether the protocol authenticates with SASL.
func (s Security) UsesSASL() bool {
	return strings.HasPrefix(strings.ToUpper(s.Protocol), "SASL_")
}

// Opts returns the client options for s, or an error naming what is wrong:
// an unknown protocol or mechanism, missing credentials, or an unreadable
// certificate file.
func (s Security) Opts() ([]kgo.Opt, error) {
	p := strings.ToUpper(s.Protocol)
	if p == "" {
		p = "PLAINTEXT"
	}
	known := false
	for _, k := range Protocols {
		known = known || k == p
	}
	if !known {
		return nil, fmt.Errorf("unknown security protocol %q: want %s", s.Protocol, strings.Join(Protocols, ", "))
	}
	var opts []kgo.Opt
	if s.UsesTLS() {
		cfg, err := s.TLSConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	} else if s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" {
		return nil, fmt.Errorf("TLS files are set but security protocol %s does not use TLS", p)
	}
	if s.UsesSASL() {
		m, err := s.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (s Security) mechanism() (sasl.Mechanism, error) {
	if s.Username == "" || s.Password == "" {
		return nil, errors.New("SASL needs a username and a password")
	}
	switch strings.ToUpper(s.Mechanism) {
	case "PLAIN":
		user, pass := s.Username, s.Password
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			return plain.Auth{User: user, Pass: pass}, nil
		}), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("unknown SASL mechanism %q: want %s", s.Mechanism, strings.Join(Mechanisms, ", "))
}

// TLSConfig builds the TLS client configuration: the system's roots, or
// those of CAFile; an optional client certificate; ServerName if set.
func (s Security) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName}
	if s.CAFile != "" {
		pool, err := LoadCAs(s.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return nil, errors.New("a client certificate needs both a certificate file and a key file")
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// LoadCAs reads a PEM file of CA certificates into a pool.
func LoadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}
