package awsfake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// DefaultAccountID is the account the Server starts with; it answers for
// every region that has no account of its own registered.
const DefaultAccountID = "123456789012"

// SecretKey is the secret of every access key the Server hands out. The
// Server does not verify signatures.
const SecretKey = "awsfake-secret-access-key"

// DefaultPageSize is the page size of every paginated operation whose caller
// does not ask for one: small, so tests go through several pages.
const DefaultPageSize = 5

// AccessKeyFor returns the long-term access key id of an account: "AKIA",
// the 12-digit account id, "FAKE". Requests signed with it act in that
// account.
func AccessKeyFor(accountID string) string { return "AKIA" + accountID + "FAKE" }

// Server is a loopback HTTP server speaking the wire protocols of EC2, Auto
// Scaling, ELBv2, ELB, STS and Service Quotas over in-memory Accounts.
type Server struct {
	hs  *http.Server
	url string

	mu       sync.Mutex
	accounts map[acctKey]*Account
	faults   map[string]*Fault
	calls    map[string]int
	sessions map[string]identity // temporary access key -> who
	pageDef  int
	pageMax  int
	reqSeq   uint64
}

type acctKey struct{ id, region string }

type identity struct {
	account string
	arn     string
	userID  string
}

// Start starts a Server on 127.0.0.1 with a free port and the default
// account.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the fake AWS endpoint: %w", err)
	}
	s := &Server{
		url:      "http://" + ln.Addr().String(),
		accounts: map[acctKey]*Account{},
		faults:   map[string]*Fault{},
		calls:    map[string]int{},
		sessions: map[string]identity{},
		pageDef:  DefaultPageSize,
	}
	s.accounts[acctKey{DefaultAccountID, ""}] = NewAccount(DefaultAccountID, "us-east-1")
	s.hs = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.hs.Serve(ln) }()
	return s, nil
}

// URL returns the endpoint, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.url }

// Close stops the server and every pending lifecycle step.
func (s *Server) Close() error {
	err := s.hs.Close()
	s.mu.Lock()
	accts := make([]*Account, 0, len(s.accounts))
	for _, a := range s.accounts {
		accts = append(accts, a)
	}
	s.mu.Unlock()
	for _, a := range accts {
		a.stop()
	}
	return err
}

// Account returns the default account (DefaultAccountID, every region).
func (s *Server) Account() *Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accounts[acctKey{DefaultAccountID, ""}]
}

// AddAccount registers a new account for one region, or for every region
// without its own registration when region is empty (its Account.Region,
// used in ARNs and zone names, is then us-east-1). It replaces an account
// registered under the same key.
func (s *Server) AddAccount(id, region string) *Account {
	name := region
	if name == "" {
		name = "us-east-1"
	}
	a := NewAccount(id, name)
	s.mu.Lock()
	old := s.accounts[acctKey{id, region}]
	s.accounts[acctKey{id, region}] = a
	s.mu.Unlock()
	if old != nil {
		old.stop()
	}
	return a
}

func (s *Server) lookup(id, region string) *Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[acctKey{id, region}]; a != nil {
		return a
	}
	return s.accounts[acctKey{id, ""}]
}

// SetPageSize sets the page size used when a caller asks for none (def)
// and a cap on what callers ask for (max, 0 for none).
func (s *Server) SetPageSize(def, max int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageDef, s.pageMax = def, max
}

func (s *Server) pageSize(requested int, has bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.pageDef
	if has && requested > 0 {
		n = requested
	}
	if s.pageMax > 0 && n > s.pageMax {
		n = s.pageMax
	}
	return n
}

// Config returns an aws.Config for the default account in region. Every
// service client made from it (ec2.NewFromConfig and so on) talks to the
// Server: BaseEndpoint applies to all services, and the Server tells them
// apart by protocol. Its retryer is the SDK's standard one (same attempts,
// same retryable and throttling codes, same retry token bucket) with
// millisecond backoff so test suites stay fast.
func (s *Server) Config(region string) aws.Config { return s.ConfigFor(DefaultAccountID, region) }

// ConfigFor is Config for another registered account.
func (s *Server) ConfigFor(accountID, region string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyFor(accountID), SecretKey, ""),
		BaseEndpoint: aws.String(s.url),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.Backoff = quickBackoff{} })
		},
	}
}

type quickBackoff struct{}

func (quickBackoff) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	return time.Duration(attempt) * time.Millisecond, nil
}

// ---- faults and call counting ----

// Codes that Fail translates into the operation's own service's error, so
// one fault reads right on every protocol.
const (
	// Throttle: EC2 RequestLimitExceeded (503), the query services
	// Throttling (400), Service Quotas TooManyRequestsException (429).
	Throttle = "awsfake:Throttle"
	// Denied: EC2 UnauthorizedOperation (403), the query services
	// AccessDenied (403), Service Quotas AccessDeniedException (403).
	Denied = "awsfake:Denied"
	// Internal: EC2 InternalError (500), the query services InternalFailure
	// (500), Service Quotas ServiceException (500).
	Internal = "awsfake:Internal"
)

// Fault is an injected failure of an operation.
type Fault struct {
	// Code is the AWS error code to answer with (RequestLimitExceeded,
	// Throttling, AccessDenied, UnauthorizedOperation, InternalError...), or
	// Throttle, Denied or Internal for the service's own one. Empty: no
	// error, only Latency.
	Code string
	// Status is the HTTP status; 0 takes the one AWS uses for Code.
	Status  int
	Message string
	// Times is how many requests fail; 0 means until Clear.
	Times int
	// Latency delays the answer, error or not.
	Latency time.Duration
}

// Fail injects a fault into an operation. op is an operation name
// ("DescribeInstances", matching it on any service) or a service-qualified
// one ("elbv2:DescribeLoadBalancers"); services are ec2, autoscaling, elbv2,
// elb, sts and servicequotas. A qualified fault wins over a bare one.
func (s *Server) Fail(op string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = &f
}

// Clear removes the faults of the named operations, or all of them.
func (s *Server) Clear(ops ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ops) == 0 {
		clear(s.faults)
	}
	for _, op := range ops {
		delete(s.faults, op)
	}
}

// takeFault returns the fault to apply to one request, counting it down.
func (s *Server) takeFault(svc, op string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := svc + ":" + op
	f := s.faults[key]
	if f == nil {
		key, f = op, s.faults[op]
	}
	if f == nil {
		return nil
	}
	out := *f
	if f.Times > 0 {
		if f.Times--; f.Times == 0 {
			delete(s.faults, key)
		}
	}
	return &out
}

// Calls counts the requests an operation received, failed ones and retries
// included; op is bare (summing all services) or qualified as in Fail.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.Contains(op, ":") {
		return s.calls[op]
	}
	n := 0
	for k, c := range s.calls {
		if _, name, _ := strings.Cut(k, ":"); name == op {
			n += c
		}
	}
	return n
}

// CallCounts returns the request count of every operation called, keyed
// "service:Operation".
func (s *Server) CallCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// ResetCalls sets every count back to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
}

// IAMAction turns a CallCounts key into the IAM action that grants it:
// elbv2 and elb both sign as elasticloadbalancing.
func IAMAction(key string) string {
	svc, op, _ := strings.Cut(key, ":")
	if svc == "elbv2" || svc == "elb" {
		svc = "elasticloadbalancing"
	}
	return svc + ":" + op
}

// ---- routing and protocols ----

type protocol int

const (
	protoEC2   protocol = iota // EC2 query: form in, EC2's own XML out
	protoQuery                 // AWS query: form in, <OpResponse><OpResult> out
	protoJSON                  // AWS JSON 1.1: X-Amz-Target, JSON in and out
)

type handler func(c *call) (any, *apiError)

type service struct {
	id    string
	proto protocol
	xmlns string
	ops   map[string]handler
}

// The services, keyed by the API version their query requests carry, and
// Service Quotas by its X-Amz-Target prefix.
var (
	byVersion = map[string]*service{}
	byTarget  = map[string]*service{}
)

func register(version string, svc *service) { byVersion[version] = svc }

// call is one request on its way through a handler.
type call struct {
	ctx    context.Context
	srv    *Server
	svc    *service
	op     string
	acct   *Account
	ident  identity
	region string
	form   form
	body   []byte
	reqID  string
}

func (c *call) pageSize(param string) (int, *apiError) {
	n, has, aerr := c.form.int(param)
	if aerr != nil {
		return 0, aerr
	}
	return c.srv.pageSize(n, has), nil
}

func (s *Server) requestID() string {
	s.mu.Lock()
	s.reqSeq++
	n := s.reqSeq
	s.mu.Unlock()
	return fmt.Sprintf("%08x-fa4e-4000-8000-%012x", uint32(time.Now().Unix()), n)
}

var credentialRE = regexp.MustCompile(`Credential=([A-Z0-9]+)/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request`)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{ctx: r.Context(), srv: s, reqID: s.requestID()}
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		return
	}
	c.body = body
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		prefix, op, _ := strings.Cut(target, ".")
		c.svc, c.op = byTarget[prefix], op
		if c.svc == nil {
			s.writeError(w, c, errf(400, "UnknownOperationException", "Unknown target %s", target))
			return
		}
	} else {
		values, err := url.ParseQuery(string(body))
		if err != nil {
			s.writeError(w, c, errf(400, "MalformedQueryString", "The query string is malformed."))
			return
		}
		for k, v := range r.URL.Query() {
			values[k] = append(values[k], v...)
		}
		c.form = form(values)
		c.svc, c.op = byVersion[c.form.str("Version")], c.form.str("Action")
		if c.svc == nil {
			c.svc = byVersion["2011-06-15"] // answer in the plain query shape
			s.writeError(w, c, errf(400, "InvalidAction", "Unknown API version %q", c.form.str("Version")))
			return
		}
	}
	s.mu.Lock()
	s.calls[c.svc.id+":"+c.op]++
	s.mu.Unlock()
	if f := s.takeFault(c.svc.id, c.op); f != nil {
		if f.Latency > 0 {
			select {
			case <-time.After(f.Latency):
			case <-r.Context().Done():
				return
			}
		}
		if f.Code != "" {
			s.writeError(w, c, c.svc.fault(*f))
			return
		}
	}
	if aerr := s.authenticate(c, r); aerr != nil {
		s.writeError(w, c, aerr)
		return
	}
	h := c.svc.ops[c.op]
	if h == nil {
		code := "InvalidAction"
		if c.svc.proto == protoJSON {
			code = "UnknownOperationException"
		}
		s.writeError(w, c, errf(400, code, "The action %s is not valid for this web service.", c.op))
		return
	}
	if c.svc.proto == protoEC2 && c.form.bool("DryRun") {
		// What a permission probe gets when the call would have been allowed.
		s.writeError(w, c, errf(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set."))
		return
	}
	res, aerr := h(c)
	if aerr != nil {
		s.writeError(w, c, aerr)
		return
	}
	s.writeResult(w, c, res)
}

// authenticate finds who signed the request from the SigV4 credential scope
// (the signature itself is not checked) and the account it acts in.
func (s *Server) authenticate(c *call, r *http.Request) *apiError {
	m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return c.svc.authError("MissingAuthenticationToken", "Request is missing Authentication Token")
	}
	key := m[1]
	c.region = m[2]
	switch {
	case len(key) == 20 && strings.HasPrefix(key, "AKIA") && strings.HasSuffix(key, "FAKE"):
		id := key[4:16]
		c.ident = identity{account: id, arn: "arn:aws:iam::" + id + ":user/awsfake", userID: "AIDA" + id + "FAKEUSER"}
	default:
		s.mu.Lock()
		ident, ok := s.sessions[key]
		s.mu.Unlock()
		if !ok {
			return c.svc.authError("InvalidClientTokenId", "The security token included in the request is invalid.")
		}
		c.ident = ident
	}
	if c.acct = s.lookup(c.ident.account, c.region); c.acct == nil {
		return c.svc.authError("InvalidClientTokenId", "The security token included in the request is invalid.")
	}
	return nil
}

func (svc *service) authError(code, msg string) *apiError {
	switch svc.proto {
	case protoEC2:
		return errf(401, "AuthFailure", "AWS was not able to validate the provided access credentials")
	case protoJSON:
		if code == "InvalidClientTokenId" {
			code = "UnrecognizedClientException"
		} else {
			code += "Exception"
		}
		return errf(400, code, "%s", msg)
	}
	return errf(403, code, "%s", msg)
}

// fault turns an injected Fault into the service's error.
func (svc *service) fault(f Fault) *apiError {
	native := map[string][3]string{ // EC2, query, JSON
		Throttle: {"RequestLimitExceeded", "Throttling", "TooManyRequestsException"},
		Denied:   {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"},
		Internal: {"InternalError", "InternalFailure", "ServiceException"},
	}
	code := f.Code
	if n, ok := native[code]; ok {
		code = n[svc.proto]
	}
	status := f.Status
	if status == 0 {
		status = defaultStatus(code)
	}
	msg := f.Message
	if msg == "" {
		msg = map[string]string{
			"RequestLimitExceeded":     "Request limit exceeded.",
			"Throttling":               "Rate exceeded",
			"TooManyRequestsException": "Rate exceeded",
			"UnauthorizedOperation":    "You are not authorized to perform this operation.",
			"AccessDenied":             "User is not authorized to perform this action",
			"AccessDeniedException":    "User is not authorized to perform this action",
		}[code]
	}
	if msg == "" {
		msg = "We encountered an internal error. Please try again."
	}
	return &apiError{Code: code, Message: msg, Status: status}
}

// defaultStatus is the HTTP status AWS answers an error code with: EC2
// throttles with 503, the query services with 400, Service Quotas with 429
// (its model's @httpError on TooManyRequestsException).
func defaultStatus(code string) int {
	switch code {
	case "RequestLimitExceeded", "ServiceUnavailable", "Unavailable":
		return 503
	case "TooManyRequestsException":
		return 429
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "InvalidClientTokenId":
		return 403
	case "AuthFailure":
		return 401
	case "InternalError", "InternalFailure", "ServiceException":
		return 500
	}
	return 400
}

func (s *Server) writeError(w http.ResponseWriter, c *call, e *apiError) {
	w.Header().Set("X-Amzn-Requestid", c.reqID)
	var x xmlWriter
	switch c.svc.proto {
	case protoEC2:
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		x.elem("Response", func() {
			x.elem("Errors", func() {
				x.elem("Error", func() {
					x.leaf("Code", e.Code)
					x.leaf("Message", e.Message)
				})
			})
			x.leaf("RequestID", c.reqID)
		})
	case protoQuery:
		w.Header().Set("Content-Type", "text/xml")
		kind := "Sender"
		if e.Status >= 500 {
			kind = "Receiver"
		}
		x.b.WriteString(`<ErrorResponse xmlns="` + c.svc.xmlns + `">`)
		x.elem("Error", func() {
			x.leaf("Type", kind)
			x.leaf("Code", e.Code)
			x.leaf("Message", e.Message)
		})
		x.leaf("RequestId", c.reqID)
		x.close("ErrorResponse")
	case protoJSON:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(e.Status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.Code, "Message": e.Message})
		return
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\n"))
	_, _ = w.Write(x.b.Bytes())
}

func (s *Server) writeResult(w http.ResponseWriter, c *call, res any) {
	w.Header().Set("X-Amzn-Requestid", c.reqID)
	switch c.svc.proto {
	case protoJSON:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if res == nil {
			res = struct{}{}
		}
		_ = json.NewEncoder(w).Encode(res)
		return
	case protoEC2:
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	default:
		w.Header().Set("Content-Type", "text/xml")
	}
	inner, _ := res.(*xmlWriter)
	var x xmlWriter
	x.b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	x.b.WriteString("<" + c.op + `Response xmlns="` + c.svc.xmlns + `">`)
	if c.svc.proto == protoEC2 {
		x.leaf("requestId", c.reqID)
		if inner != nil {
			x.b.Write(inner.b.Bytes())
		}
	} else {
		if inner != nil {
			x.elem(c.op+"Result", func() { x.b.Write(inner.b.Bytes()) })
		}
		x.elem("ResponseMetadata", func() { x.leaf("RequestId", c.reqID) })
	}
	x.close(c.op + "Response")
	_, _ = w.Write(x.b.Bytes())
}
