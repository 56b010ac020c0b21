package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
)

// workload is one of the two request mixes every server answers.
type workload struct {
	name   string // "read" or "write"
	method string
	path   string
}

var workloads = []workload{
	{name: "read", method: http.MethodGet, path: "/read"},
	{name: "write", method: http.MethodPost, path: "/write"},
}

// newTransport returns the load generator's keep-alive transport: at most
// conns connections to the server, each reused for the whole run.
func newTransport(conns int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// login creates n sessions through the server's own POST /login, so every
// cookie is in the server's own format, and returns one "name=value" Cookie
// header per session, with the user names.
func login(ctx context.Context, rt http.RoundTripper, base string, n int) (cookies, users []string, err error) {
	cookies = make([]string, n)
	users = make([]string, n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				user := fmt.Sprintf("u%03d", i)
				c, err := loginOne(ctx, rt, base, user)
				mu.Lock()
				if err != nil && first == nil {
					first = fmt.Errorf("login %s: %w", user, err)
				}
				cookies[i], users[i] = c, user
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return cookies, users, first
}

func loginOne(ctx context.Context, rt http.RoundTripper, base, user string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/login?user="+url.QueryEscape(user), nil)
	if err != nil {
		return "", err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	cs := resp.Cookies()
	if len(cs) == 0 {
		return "", errors.New("no Set-Cookie in the response")
	}
	return cs[0].Name + "=" + cs[0].Value, nil
}

// phase is what one timed loop measured.
type phase struct {
	ok        int64
	errors    int64
	errorLog  []string // the first few failures, for the report
	latencies []time.Duration
	elapsed   time.Duration
}

// runPhase sends requests on conns concurrent keep-alive connections until
// dur has passed (or ctx ends), each with the cookie of a session picked at
// random. Requests are built before the clock starts; each worker has its
// own copies, its own random source and its own latency slice, so the loop
// allocates only what net/http does. A response counts as an error unless
// it is 2xx with the expected body: the session's user name for reads, a
// positive counter for writes.
func runPhase(ctx context.Context, rt http.RoundTripper, base string, wl workload, cookies, users []string, conns int, dur time.Duration, seed uint64) (phase, error) {
	u, err := url.Parse(base + wl.path)
	if err != nil {
		return phase{}, err
	}
	type worker struct {
		reqs []*http.Request
		lat  []time.Duration
		ok   int64
		errs int64
		log  []string
	}
	workers := make([]*worker, conns)
	for w := range workers {
		wk := &worker{reqs: make([]*http.Request, len(cookies)), lat: make([]time.Duration, 0, 1<<14)}
		for i, c := range cookies {
			req := (&http.Request{
				Method:     wl.method,
				URL:        u,
				Proto:      "HTTP/1.1",
				ProtoMajor: 1,
				ProtoMinor: 1,
				Header:     http.Header{"Cookie": {c}},
				Host:       u.Host,
			}).WithContext(ctx)
			if wl.method == http.MethodPost {
				req.Body = http.NoBody
				req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
			}
			wk.reqs[i] = req
		}
		workers[w] = wk
	}
	expect := make([][]byte, len(users))
	for i, user := range users {
		expect[i] = []byte(user)
	}

	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(dur)
	for w, wk := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			var buf [512]byte
			fail := func(msg string) {
				wk.errs++
				if len(wk.log) < 3 {
					wk.log = append(wk.log, msg)
				}
			}
			for ctx.Err() == nil {
				t0 := time.Now()
				if t0.After(deadline) {
					return
				}
				k := rng.IntN(len(wk.reqs))
				resp, err := rt.RoundTrip(wk.reqs[k])
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					fail(err.Error())
					continue
				}
				n, rerr := readBody(resp.Body, buf[:])
				resp.Body.Close()
				wk.lat = append(wk.lat, time.Since(t0))
				body := buf[:n]
				switch {
				case rerr != nil:
					fail(fmt.Sprintf("%s %s: reading body: %v", wl.method, wl.path, rerr))
				case resp.StatusCode < 200 || resp.StatusCode > 299:
					fail(fmt.Sprintf("%s %s: status %d: %q", wl.method, wl.path, resp.StatusCode, body))
				case wl.name == "read" && string(body) != string(expect[k]):
					fail(fmt.Sprintf("GET /read as %s: body %q", expect[k], body))
				case wl.name == "write" && !positive(body):
					fail(fmt.Sprintf("POST /write as %s: body %q", expect[k], body))
				default:
					wk.ok++
				}
			}
		}()
	}
	wg.Wait()
	p := phase{elapsed: time.Since(start)}
	for _, wk := range workers {
		p.ok += wk.ok
		p.errors += wk.errs
		p.latencies = append(p.latencies, wk.lat...)
		for _, m := range wk.log {
			if len(p.errorLog) < 5 {
				p.errorLog = append(p.errorLog, m)
			}
		}
	}
	slices.Sort(p.latencies)
	return p, ctx.Err()
}

// readBody reads the whole body into buf; a body that does not fit is an
// error (every expected body is a few bytes).
func readBody(r io.Reader, buf []byte) (int, error) {
	n := 0
	for {
		if n == len(buf) {
			var one [1]byte
			if m, _ := r.Read(one[:]); m > 0 {
				return n, errors.New("body longer than expected")
			}
			return n, nil
		}
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func positive(b []byte) bool {
	n, err := strconv.Atoi(string(b))
	return err == nil && n > 0
}

// percentile returns the q-th percentile (0 < q < 100) of sorted latencies.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)) * q / 100)
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}
