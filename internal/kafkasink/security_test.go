package kafkasink

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
	"github.com/dota-data/ingestion-service/internal/match"
)

func TestSASLSSL(t *testing.T) {
	for _, mech := range []string{"SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			cluster := kafkatest.StartSecure(t)
			topic := cluster.Topic(t, 1)
			s, _, logs := newSink(t, Config{
				Brokers: cluster.Brokers, Topic: topic, ProbeInterval: 50 * time.Millisecond,
				Security: Security{
					Protocol: "SASL_SSL", Mechanism: mech,
					Username: cluster.User, Password: cluster.Password, CAFile: cluster.CAFile,
				},
			})
			runSink(t, s)
			waitFor(t, "ready over SASL_SSL", 30*time.Second, func() bool { return s.Status().Up })
			for i := int64(1); i <= 20; i++ {
				if err := s.Publish(context.Background(), match.Match{ID: i}); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "records acknowledged", 30*time.Second, func() bool { return s.Published() == 20 })
			if got := len(cluster.ReadAll(t, topic, 20, 20*time.Second)); got != 20 {
				t.Fatalf("topic holds %d records, want 20", got)
			}
			if strings.Contains(logs.String(), cluster.Password) {
				t.Fatalf("the password appears in the logs")
			}
		})
	}
}

func TestWrongPasswordIsNotReadyWithoutCrashing(t *testing.T) {
	cluster := kafkatest.StartSecure(t)
	topic := cluster.Topic(t, 1)
	s, _, logs := newSink(t, Config{
		Brokers: cluster.Brokers, Topic: topic, ProbeInterval: 50 * time.Millisecond,
		Security: Security{
			Protocol: "SASL_SSL", Mechanism: "SCRAM-SHA-512",
			Username: cluster.User, Password: "wrong-password", CAFile: cluster.CAFile,
		},
	})
	runSink(t, s)
	if err := s.Publish(context.Background(), match.Match{ID: 7}); err != nil {
		t.Fatalf("Publish with bad credentials must hold the record, got %v", err)
	}
	// A real broker answers SASL_AUTHENTICATION_FAILED; the in-process one
	// just drops the connection, so only the real one is held to the word.
	waitFor(t, "a failed probe", 30*time.Second, func() bool {
		st := s.Status()
		return !st.Up && strings.Contains(st.Detail, "metadata for topic")
	})
	if cluster.Fake == nil {
		waitFor(t, "an authentication failure in the status", 30*time.Second, func() bool {
			return strings.Contains(strings.ToLower(s.Status().Detail), "authentication")
		})
	}
	// Still running and still retrying: several more probes come and go.
	time.Sleep(300 * time.Millisecond)
	if st := s.Status(); st.Up {
		t.Fatalf("ready with a wrong password")
	}
	if s.Published() != 0 {
		t.Fatalf("published with a wrong password")
	}
	if strings.Contains(logs.String(), "wrong-password") {
		t.Fatalf("the password appears in the logs")
	}
}

func TestMutualTLS(t *testing.T) {
	cluster := kafkatest.StartMTLS(t)
	topic := cluster.Topic(t, 1)
	t.Run("with the client certificate", func(t *testing.T) {
		s, _, _ := newSink(t, Config{
			Brokers: cluster.Brokers, Topic: topic, ProbeInterval: 50 * time.Millisecond,
			Security: Security{Protocol: "SSL", CAFile: cluster.CAFile, CertFile: cluster.CertFile, KeyFile: cluster.KeyFile, ServerName: "localhost"},
		})
		runSink(t, s)
		waitFor(t, "ready over mutual TLS", 30*time.Second, func() bool { return s.Status().Up })
		if err := s.Publish(context.Background(), match.Match{ID: 9}); err != nil {
			t.Fatal(err)
		}
		if recs := cluster.ReadAll(t, topic, 1, 20*time.Second); len(recs) != 1 || string(recs[0].Value) != `{"match_id":9}` {
			t.Fatalf("records = %v", recs)
		}
	})
	t.Run("without it", func(t *testing.T) {
		s, _, _ := newSink(t, Config{
			Brokers: cluster.Brokers, Topic: topic, ProbeInterval: 50 * time.Millisecond,
			Security: Security{Protocol: "SSL", CAFile: cluster.CAFile},
		})
		runSink(t, s)
		waitFor(t, "a failed probe", 30*time.Second, func() bool {
			st := s.Status()
			return !st.Up && strings.Contains(st.Detail, "metadata for topic")
		})
		time.Sleep(200 * time.Millisecond)
		if s.Status().Up {
			t.Fatal("ready without a client certificate")
		}
	})
}

func TestTLSVerifiesTheBroker(t *testing.T) {
	cluster := kafkatest.StartSecure(t)
	s, _, _ := newSink(t, Config{
		Brokers: cluster.Brokers, Topic: "t", ProbeInterval: 50 * time.Millisecond,
		Security: Security{
			Protocol: "SASL_SSL", Mechanism: "SCRAM-SHA-512",
			Username: cluster.User, Password: cluster.Password, CAFile: kafkatest.OtherCAFile(t),
		},
	})
	runSink(t, s)
	waitFor(t, "a certificate error in the status", 30*time.Second, func() bool {
		st := s.Status()
		return !st.Up && strings.Contains(st.Detail, "certificate")
	})
}

func TestSecurityOptsRejectsBadSettings(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		sec  Security
		want string
	}{
		{"unknown protocol", Security{Protocol: "TLS"}, "unknown security protocol"},
		{"unknown mechanism", Security{Protocol: "SASL_SSL", Mechanism: "GSSAPI", Username: "u", Password: "p"}, "unknown SASL mechanism"},
		{"no password", Security{Protocol: "SASL_PLAINTEXT", Mechanism: "PLAIN", Username: "u"}, "username and a password"},
		{"missing CA", Security{Protocol: "SSL", CAFile: filepath.Join(dir, "nope.pem")}, "CA file"},
		{"CA not PEM", Security{Protocol: "SSL", CAFile: notPEM}, "no PEM certificate"},
		{"cert without key", Security{Protocol: "SSL", CertFile: notPEM}, "both a certificate file and a key file"},
		{"TLS files on plaintext", Security{CAFile: notPEM}, "does not use TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.sec.Opts()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Opts() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	for _, ok := range []Security{{}, {Protocol: "plaintext"}, {Protocol: "SSL"}, {Protocol: "SASL_PLAINTEXT", Mechanism: "plain", Username: "u", Password: "p"}} {
		if _, err := ok.Opts(); err != nil {
			t.Errorf("Opts(%+v) = %v", ok, err)
		}
	}
}
