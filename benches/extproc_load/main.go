// extproc-load drives vsr's ext_proc gRPC port directly, the way Envoy does for one chat
// completion, so vsr's own latency and capacity can be measured without Envoy in the path.
//
// Per request it opens one ExternalProcessor.Process stream and sends, waiting for each answer:
// request headers, the buffered request body (end_of_stream), response headers (":status" 200,
// application/json) and, when vsr's answer to those switches the response body to BUFFERED or
// STREAMED (mode_override, as Envoy honours with allow_mode_override), the response body in one
// chunk.
// Then it half-closes the stream and waits for vsr to end it, as Envoy does.
//
//	extproc-load -addr 127.0.0.1:50051 -requests 2000 -concurrency 16 [-conns 2] [-json]
//
// Closed loop: -concurrency workers share -requests; -conns HTTP/2 connections (Envoy opens one
// per worker thread) carry the streams round robin. Prints p50/p99 (ms) and requests/s.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	modev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

var prompts = []string{
	"What is 2+2 * (5-1)?",
	"Summarize the Kubernetes Gateway API in three sentences.",
	"What is the derivative of f(x) = x^3?",
	"Write a short poem about the sea.",
	"Explain how a bond's price relates to interest rates.",
	"Which enzyme unwinds DNA during replication?",
}

// What the simulated backend answers (the shape, and about the size, of a short completion).
const completion = `{"id":"chatcmpl-sim","object":"chat.completion","created":1700000000,` +
	`"model":"phi4-mini","choices":[{"index":0,"message":{"role":"assistant","content":` +
	`"This is a simulated answer from the backend."},"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}`

func headerMap(pairs ...string) *corev3.HeaderMap {
	headers := make([]*corev3.HeaderValue, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		headers = append(headers, &corev3.HeaderValue{Key: pairs[i], RawValue: []byte(pairs[i+1])})
	}
	return &corev3.HeaderMap{Headers: headers}
}

type result struct {
	latency time.Duration
	err     error
}

func oneRequest(ctx context.Context, client extprocv3.ExternalProcessorClient, index int) error {
	stream, err := client.Process(ctx)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{
		"model":    "auto",
		"messages": []map[string]string{{"role": "user", "content": prompts[index%len(prompts)]}},
	})
	exchange := func(message *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
		if err := stream.Send(message); err != nil {
			return nil, err
		}
		return stream.Recv()
	}
	answer, err := exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(
			":authority", "127.0.0.1:8801", ":path", "/v1/chat/completions", ":method", "POST",
			":scheme", "http", "content-type", "application/json",
			"content-length", strconv.Itoa(len(body)), "user-agent", "extproc-load/1",
			"accept", "*/*", "x-forwarded-proto", "http",
			"x-request-id", fmt.Sprintf("00000000-0000-4000-8000-%012d", index),
		)},
	}})
	if err != nil {
		return err
	}
	if answer.GetImmediateResponse() != nil {
		return fmt.Errorf("immediate response to the request headers")
	}
	answer, err = exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true},
	}})
	if err != nil {
		return err
	}
	if immediate := answer.GetImmediateResponse(); immediate != nil {
		return fmt.Errorf("immediate response %d to the body", immediate.GetStatus().GetCode())
	}
	answer, err = exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(
			":status", "200", "content-type", "application/json",
			"content-length", strconv.Itoa(len(completion)), "date", "Wed, 02 Dec 2026 00:00:00 GMT",
			"server", "envoy", "x-envoy-upstream-service-time", "0",
		)},
	}})
	if err != nil {
		return err
	}
	// vsr asks for this body BUFFERED (JSON with a small content-length) or STREAMED. It goes as
	// one message either way: Envoy's empty end chunk after a STREAMED body is not modelled, so
	// runs here do not show the message BUFFERED saves through Envoy.
	if mode := answer.GetModeOverride().GetResponseBodyMode(); mode == modev3.ProcessingMode_STREAMED ||
		mode == modev3.ProcessingMode_BUFFERED {
		if _, err = exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
			ResponseBody: &extprocv3.HttpBody{Body: []byte(completion), EndOfStream: true},
		}}); err != nil {
			return err
		}
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	if _, err := stream.Recv(); err != io.EOF {
		return fmt.Errorf("stream did not end: %v", err)
	}
	return nil
}

func percentile(sorted []time.Duration, fraction float64) time.Duration {
	index := int(fraction*float64(len(sorted)-1) + 0.5)
	return sorted[index]
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "vsr's ext_proc gRPC address")
	requests := flag.Int("requests", 1000, "requests in all")
	concurrency := flag.Int("concurrency", 1, "requests in flight at once")
	conns := flag.Int("conns", 2, "HTTP/2 connections (Envoy opens one per worker thread)")
	warmup := flag.Int("warmup", 20, "requests sent first and not counted")
	asJSON := flag.Bool("json", false, "print one JSON object")
	flag.Parse()

	clients := make([]extprocv3.ExternalProcessorClient, *conns)
	for i := range clients {
		conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer conn.Close()
		clients[i] = extprocv3.NewExternalProcessorClient(conn)
	}
	ctx := context.Background()
	for i := 0; i < *warmup; i++ {
		if err := oneRequest(ctx, clients[i%len(clients)], i); err != nil {
			fmt.Fprintln(os.Stderr, "warm-up:", err)
			os.Exit(1)
		}
	}

	var next atomic.Int64
	results := make([]result, *requests)
	var wg sync.WaitGroup
	started := time.Now()
	for w := 0; w < *concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				index := int(next.Add(1) - 1)
				if index >= *requests {
					return
				}
				begun := time.Now()
				err := oneRequest(ctx, clients[index%len(clients)], index)
				results[index] = result{time.Since(begun), err}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(started)

	latencies := make([]time.Duration, 0, len(results))
	failed := 0
	var firstErr error
	for _, r := range results {
		if r.err != nil {
			failed++
			if firstErr == nil {
				firstErr = r.err
			}
			continue
		}
		latencies = append(latencies, r.latency)
	}
	if len(latencies) == 0 {
		fmt.Fprintln(os.Stderr, "every request failed:", firstErr)
		os.Exit(1)
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	out := map[string]any{
		"requests": len(latencies), "failed": failed,
		"p50_ms": ms(percentile(latencies, 0.5)), "p99_ms": ms(percentile(latencies, 0.99)),
		"rps": float64(len(latencies)) / wall.Seconds(),
	}
	if firstErr != nil {
		out["first_error"] = firstErr.Error()
	}
	if *asJSON {
		encoded, _ := json.Marshal(out)
		fmt.Println(string(encoded))
	} else {
		fmt.Printf("%d requests (%d failed) at concurrency %d: p50 %.2f ms, p99 %.2f ms, %.0f req/s\n",
			len(latencies), failed, *concurrency, out["p50_ms"], out["p99_ms"], out["rps"])
	}
	if failed > 0 {
		fmt.Fprintln(os.Stderr, "first error:", firstErr)
		os.Exit(1)
	}
}
