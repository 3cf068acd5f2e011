package kafkatest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Environment variables naming a real SASL_SSL listener, as scripts/kafka.sh
// prints them.
const (
	SASLBrokerEnv   = "KAFKA_TEST_SASL_SSL_BROKER"
	CAFileEnv       = "KAFKA_TEST_CA_FILE"
	SASLUserEnv     = "KAFKA_TEST_SASL_USER"
	SASLPasswordEnv = "KAFKA_TEST_SASL_PASSWORD"
)

// Secure is a cluster reached over SASL_SSL with SCRAM.
type Secure struct {
	*Cluster
	// CAFile is a PEM file holding the CA that signed the brokers'
	// certificates.
	CAFile string
	// User and Password are valid credentials for PLAIN, SCRAM-SHA-256
	// and SCRAM-SHA-512.
	User, Password string
}

// StartSecure returns a SASL_SSL cluster: the real listener named by
// SASLBrokerEnv when it is set, else a kfake cluster with TLS from a
// certificate made for this test and a SCRAM-SHA-512 user.
func StartSecure(t testing.TB) *Secure {
	t.Helper()
	if addr := os.Getenv(SASLBrokerEnv); addr != "" {
		s := &Secure{
			Cluster:  &Cluster{Brokers: []string{addr}},
			CAFile:   os.Getenv(CAFileEnv),
			User:     os.Getenv(SASLUserEnv),
			Password: os.Getenv(SASLPasswordEnv),
		}
		s.Opts = s.clientOpts(t)
		return s
	}
	caFile, serverCert := makeCerts(t)
	s := &Secure{CAFile: caFile, User: "ingest", Password: "ingest-secret"}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", s.User, s.Password),
		kfake.Superuser("SCRAM-SHA-256", s.User, s.Password),
		kfake.Superuser("PLAIN", s.User, s.Password),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}),
	)
	if err != nil {
		t.Fatalf("start kfake with SASL_SSL: %v", err)
	}
	t.Cleanup(c.Close)
	s.Cluster = &Cluster{Brokers: c.ListenAddrs(), Fake: c}
	s.Opts = s.clientOpts(t)
	return s
}

func (s *Secure) clientOpts(t testing.TB) []kgo.Opt {
	t.Helper()
	pemBytes, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatalf("CA file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("CA file %s holds no certificate", s.CAFile)
	}
	return []kgo.Opt{
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism()),
	}
}

// makeCerts creates a CA and a server certificate for 127.0.0.1 and
// localhost signed by it, and returns the CA's PEM file and the server's
// key pair.
func makeCerts(t testing.TB) (string, tls.Certificate) {
	t.Helper()
	ca, srv, _ := makePKI(t)
	return ca.file, srv
}

// OtherCAFile returns a PEM file of a CA made for this test, which signed
// none of the brokers' certificates.
func OtherCAFile(t testing.TB) string {
	t.Helper()
	ca, _, _ := makePKI(t)
	return ca.file
}

// pki is a CA made for one test.
type pki struct {
	file string
	cert *x509.Certificate
}

// MTLS is an in-process cluster that requires a client certificate.
type MTLS struct {
	*Cluster
	// CAFile signed both the broker's and the client's certificates.
	CAFile string
	// CertFile and KeyFile are the client's PEM certificate and key.
	CertFile, KeyFile string
}

// StartMTLS starts a kfake cluster that requires TLS client certificates
// signed by a CA made for this test.
func StartMTLS(t testing.TB) *MTLS {
	t.Helper()
	ca, srv, client := makePKI(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.TLS(&tls.Config{
			Certificates: []tls.Certificate{srv},
			ClientCAs:    pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		}),
	)
	if err != nil {
		t.Fatalf("start kfake with mutual TLS: %v", err)
	}
	t.Cleanup(c.Close)
	dir := t.TempDir()
	m := &MTLS{CAFile: ca.file, CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem")}
	keyDER, err := x509.MarshalPKCS8PrivateKey(client.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, m.CertFile, "CERTIFICATE", client.Certificate[0])
	writePEM(t, m.KeyFile, "PRIVATE KEY", keyDER)
	m.Cluster = &Cluster{Brokers: c.ListenAddrs(), Fake: c, Opts: []kgo.Opt{
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}, MinVersion: tls.VersionTLS12}),
	}}
	return m
}

func writePEM(t testing.TB, file, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// makePKI creates a CA, a server certificate for 127.0.0.1 and localhost,
// and a client certificate, both signed by the CA.
func makePKI(t testing.TB) (pki, tls.Certificate, tls.Certificate) {
	t.Helper()
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ingestion-service test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	ca := issue(t, caTmpl, nil, nil)
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	caKey := ca.PrivateKey.(*ecdsa.PrivateKey)
	srv := issue(t, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}, caCert, caKey)
	client := issue(t, &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "ingestion-service"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, caKey)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, caFile, "CERTIFICATE", ca.Certificate[0])
	return pki{file: caFile, cert: caCert}, srv, client
}

// issue makes a key and a certificate from tmpl, signed by parent with
// parentKey, or self-signed when parent is nil.
func issue(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
