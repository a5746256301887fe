package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/Shopify/sarama"
	"github.com/aws/aws-msk-iam-sasl-signer-go/signer"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/xdg-go/scram"

	"github.com/emitd/emitd/adapters/broker"
	"github.com/emitd/emitd/adapters/tlsconfig"
)

// SASL mechanisms (SASL.Mechanism).
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
	// MechanismAWSMSKIAM is Amazon MSK's IAM access control: SASL/OAUTHBEARER
	// with a token signed (SigV4) by the AWS credentials of the default
	// chain (environment, shared files and profiles, web identity, ECS and
	// EC2 roles). No username or password.
	MechanismAWSMSKIAM = "AWS_MSK_IAM"
)

// SASL is the sasl section: how emitd authenticates to the brokers. Off
// when Mechanism is empty.
type SASL struct {
	// Mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM.
	Mechanism string `yaml:"mechanism"`
	// Username and Password for PLAIN and SCRAM (Confluent Cloud: the API
	// key and its secret).
	Username string `yaml:"username"`
	Password string `yaml:"password" secret:"true"`
	// PasswordFile is a file holding the password (a mounted secret), read
	// at start instead of Password.
	PasswordFile string `yaml:"passwordFile" file:"true"`
	// Region of the MSK cluster for AWS_MSK_IAM (the token is signed for
	// it). When empty: the region in the brokers' host names
	// (b-1.x.y.kafka.eu-west-1.amazonaws.com), else the AWS SDK's
	// (AWS_REGION, the profile).
	Region string `yaml:"region"`
}

func (s SASL) on() bool { return s.Mechanism != "" }

// who is how an error names the login: mechanism and user, never the
// password.
func (s SASL) who() string {
	if s.Mechanism == MechanismAWSMSKIAM {
		return s.Mechanism + " with the AWS default credentials"
	}
	return fmt.Sprintf("%s as user %q", s.Mechanism, s.Username)
}

// Problems are the static mistakes in the security settings of c (TLS and
// SASL; no file is read, no broker dialled), each naming its field under
// path, the section's field path (e.g. "brokers.kafka"). Build errors
// (unreadable files) come from SaramaConfig.
func (c Config) Problems(path string) []string {
	out := c.TLS.Problems(path + ".tls")
	s := c.SASL
	switch s.Mechanism {
	case "":
		if s.Username != "" || s.Password != "" {
			out = append(out, path+".sasl.username/password are set but "+path+".sasl.mechanism is not: set it to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
	case MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		if s.Username == "" {
			out = append(out, path+".sasl.username is required with mechanism "+s.Mechanism)
		}
		if s.Password == "" {
			out = append(out, path+".sasl.password is required with mechanism "+s.Mechanism)
		}
	case MechanismAWSMSKIAM:
		if s.Username != "" || s.Password != "" {
			out = append(out, path+".sasl.username/password are not used with AWS_MSK_IAM (it signs with the AWS credentials of the default chain): remove them")
		}
		if !c.tlsOn() {
			out = append(out, path+".sasl.mechanism AWS_MSK_IAM needs TLS (MSK's IAM listener, port 9098, speaks TLS only): set "+path+".tls.enabled: true")
		}
	default:
		out = append(out, fmt.Sprintf("%s.sasl.mechanism %q: want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM", path, s.Mechanism))
	}
	return out
}

func (c Config) tlsOn() bool { return c.TLSConfig != nil || c.TLS.On() }

// secure sets Net.TLS and Net.SASL of sc from c.
func (c Config) secure(sc *sarama.Config) error {
	if p := c.Problems("brokers.kafka"); len(p) > 0 {
		return errors.New(p[0])
	}
	if c.TLSConfig != nil {
		sc.Net.TLS.Enable, sc.Net.TLS.Config = true, c.TLSConfig.Clone()
	} else if c.TLS.On() {
		tc, err := c.TLS.Build()
		if err != nil {
			return fmt.Errorf("brokers.kafka.%w", err)
		}
		sc.Net.TLS.Enable, sc.Net.TLS.Config = true, tc
	}
	s := c.SASL
	if !s.on() {
		return nil
	}
	sc.Net.SASL.Enable = true
	sc.Net.SASL.Handshake = true
	// SaslAuthenticate requests (KIP-152, Kafka 1.0; kfake knows no other)
	// carry the broker's refusal as an error code; v0 only drops the
	// connection. OAUTHBEARER needs v1 whatever this says.
	if sc.Version.IsAtLeast(sarama.V1_0_0_0) {
		sc.Net.SASL.Version = sarama.SASLHandshakeV1
	}
	switch s.Mechanism {
	case MechanismPlain:
		sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case MechanismSCRAMSHA256:
		sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
	case MechanismSCRAMSHA512:
		sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
	case MechanismAWSMSKIAM:
		region, err := mskRegion(s.Region, c.Brokers)
		if err != nil {
			return err
		}
		sc.Net.SASL.Mechanism = sarama.SASLTypeOAuth
		sc.Net.SASL.TokenProvider = &MSKTokenProvider{Region: region}
		return nil
	}
	sc.Net.SASL.User, sc.Net.SASL.Password = s.Username, s.Password
	return nil
}

// scramClient is Sarama's SCRAM conversation on xdg-go/scram (what
// Sarama's own example uses).
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (x *scramClient) Begin(user, password, authzID string) error {
	c, err := x.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	x.conv = c.NewConversation()
	return nil
}
func (x *scramClient) Step(challenge string) (string, error) { return x.conv.Step(challenge) }
func (x *scramClient) Done() bool                            { return x.conv.Done() }

// mskHost finds the region in an MSK broker address.
var mskHost = regexp.MustCompile(`\.kafka(?:-serverless)?\.([a-z0-9-]+)\.amazonaws\.com(?::\d+)?$`)

func mskRegion(region string, brokers []string) (string, error) {
	if region != "" {
		return region, nil
	}
	for _, b := range brokers {
		if m := mskHost.FindStringSubmatch(b); m != nil {
			return m[1], nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err == nil && ac.Region != "" {
		return ac.Region, nil
	}
	return "", errors.New("brokers.kafka.sasl.region: AWS_MSK_IAM signs for a region and none is known: set brokers.kafka.sasl.region, or AWS_REGION")
}

// MSKTokenProvider is Sarama's OAUTHBEARER token source for AWS_MSK_IAM:
// each new connection gets a token (a SigV4-presigned kafka-cluster:Connect
// request, valid 15 minutes) signed with the AWS SDK's default credentials,
// so rotated credentials (roles, web identity) are picked up.
type MSKTokenProvider struct {
	Region string
}

// Token implements sarama.AccessTokenProvider.
func (p *MSKTokenProvider) Token() (*sarama.AccessToken, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, _, err := signer.GenerateAuthToken(ctx, p.Region)
	if err != nil {
		return nil, &credentialsError{err}
	}
	return &sarama.AccessToken{Token: tok}, nil
}

// credentialsError: the token provider found no AWS credentials.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string {
	return "AWS_MSK_IAM: no usable AWS credentials in the default chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity, the ECS or EC2 role): " + e.err.Error()
}
func (e *credentialsError) Unwrap() error { return e.err }

// ConnectError is a failure to reach, secure or log in to the broker:
// broker.ConnectError, with Broker "kafka".
type ConnectError = broker.ConnectError

// connectError says at which step a client of c failed to come up.
//
// Sarama hides the cause more often than not: it retries a failed
// bootstrap and reports only "run out of available brokers" when the last
// attempt found no broker left, and it drops a broker's refusal of the SASL
// mechanism. Then one connection of emitd's own, a sarama.Broker opened
// with the same configuration and asked for metadata, shows the cause.
//
// Sarama also handshakes TLS lazily, on the first request (the SASL
// handshake when SASL is on), and a broker that refuses a login may just
// close the connection (kfake and Kafka before 1.0 do): a closed
// connection alone does not tell the TLS handshake from the login. A TLS
// handshake of emitd's own with the first broker that answers settles it.
// reachFailure says whether err is about reaching the cluster (no broker
// answers, the network, TLS, SASL) rather than about what was asked of it
// (a topic that does not exist): only the first is a *ConnectError.
func reachFailure(err error) bool {
	var nerr net.Error
	return errors.Is(err, sarama.ErrOutOfBrokers) || errors.Is(err, sarama.ErrNotConnected) ||
		errors.As(err, &nerr) || errors.As(err, new(*ConnectError)) || errors.As(err, new(*credentialsError)) ||
		errors.Is(err, sarama.ErrSASLAuthenticationFailed) || errors.Is(err, sarama.ErrUnsupportedSASLMechanism) ||
		errors.Is(err, sarama.ErrIllegalSASLState) || tlsconfig.Explain(err) != "" ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func (c Config) connectError(sc *sarama.Config, err error) error {
	if err == nil {
		return nil
	}
	var ce *ConnectError
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, sarama.ErrOutOfBrokers) && errors.Unwrap(err) == nil {
		if perr := probeBroker(c.Brokers, sc); perr != nil {
			err = perr
		}
	}
	e := &ConnectError{Broker: BrokerName, Address: strings.Join(c.Brokers, ", "), Step: "connect", Err: err}
	closed := errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	tlsOn := sc.Net.TLS.Enable
	switch {
	case tlsOn && !closed && tlsconfig.Explain(err) != "":
		e.Step, e.Reason = "TLS handshake", tlsconfig.Explain(err)
	case errors.As(err, new(*credentialsError)):
		e.Step, e.Login = "SASL authentication", c.SASL.who()
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		e.Step, e.Login, e.Reason = "SASL authentication", c.SASL.who(), "the broker refused the credentials"
	case errors.Is(err, sarama.ErrUnsupportedSASLMechanism):
		e.Step, e.Login, e.Reason = "SASL authentication", c.SASL.who(), "the broker does not offer mechanism "+c.SASL.Mechanism+" on this listener"
	case errors.Is(err, sarama.ErrIllegalSASLState):
		e.Step, e.Login, e.Reason = "SASL authentication", c.SASL.who(), "the broker does not expect SASL here (a listener without SASL?)"
	case closed:
		if tlsOn {
			if herr := probeTLS(c.Brokers, sc); herr != nil {
				e.Step, e.Reason = "TLS handshake", tlsconfig.Explain(herr)
				if e.Reason == "" {
					e.Reason = herr.Error()
				}
				break
			}
		}
		if c.SASL.on() {
			e.Step, e.Login = "SASL authentication", c.SASL.who()
			e.Reason = "the broker closed the connection during the login: this points to refused credentials or a mechanism the listener does not accept"
		} else {
			e.Reason = "the broker closed the connection: does this listener want TLS or SASL?"
		}
	default:
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			e.Reason = "no broker answers at this address"
		}
	}
	return e
}

// probeBroker opens one connection to the first bootstrap broker that
// accepts one, as Sarama's client would, and asks it for metadata; the
// first error, or nil.
func probeBroker(brokers []string, sc *sarama.Config) error {
	var first error
	for _, addr := range brokers {
		b := sarama.NewBroker(addr)
		err := b.Open(sc)
		if err == nil {
			_, err = b.Connected() // waits for the dial, TLS, SASL
		}
		if err == nil {
			_, err = b.GetMetadata(sarama.NewMetadataRequest(sc.Version, nil))
		}
		_ = b.Close()
		if err == nil {
			return nil
		}
		var op *net.OpError
		if first == nil || !(errors.As(err, &op) && op.Op == "dial") {
			first = err
		}
		if !(errors.As(err, &op) && op.Op == "dial") {
			return err
		}
	}
	return first
}

// preflight checks, before a Sarama client is made, that the first
// bootstrap broker that answers can be reached, secured and logged in to,
// with one connection of emitd's own (probeBroker). Sarama's client would
// find the same failures, but it retries them and forgets their cause, and
// Sarama 1.38 races when it re-opens a broker whose SASL v1 login failed
// (its old response reader closes the new connection's done channel; found
// by go test -race against kfake): a client is made only once the login
// is known to work. An AWS_MSK_IAM token is got first, so missing AWS
// credentials are named as such. Plain-text clusters without SASL skip it.
func (c Config) preflight(sc *sarama.Config) error {
	if p, ok := sc.Net.SASL.TokenProvider.(*MSKTokenProvider); ok {
		if _, err := p.Token(); err != nil {
			return &ConnectError{Broker: BrokerName, Address: strings.Join(c.Brokers, ", "), Step: "SASL authentication", Login: c.SASL.who(), Err: err}
		}
	}
	if !sc.Net.SASL.Enable && !sc.Net.TLS.Enable {
		return nil
	}
	if err := probeBroker(c.Brokers, sc); err != nil {
		return c.connectError(sc, err)
	}
	return nil
}

// probeTLS handshakes with the first bootstrap broker that accepts a TCP
// connection; nil when the handshake succeeds or none answers (the error
// is then not TLS's).
func probeTLS(brokers []string, sc *sarama.Config) error {
	for _, addr := range brokers {
		d := &net.Dialer{Timeout: sc.Net.DialTimeout}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			continue
		}
		tc := sc.Net.TLS.Config.Clone()
		if tc == nil {
			tc = &tls.Config{}
		}
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(addr)
		}
		c := tls.Client(conn, tc)
		_ = c.SetDeadline(time.Now().Add(sc.Net.DialTimeout))
		err = c.Handshake()
		c.Close()
		return err
	}
	return nil
}
