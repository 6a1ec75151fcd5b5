// HttpTransport: HTTP/1.1 over TCP with Boost.Beast and Asio, event-driven.
//
// A connection's life (one coroutine per connection, on its own strand):
// clang-format off
//
//   accept ──► read request ──► handler ──► immediate response ──────────► write ──► keep-alive? ─► read …
//                 │  (deadline:     │                                                     └─ no: close
//                 │   read_timeout) └─► AsyncReply: the coroutine sleeps until the
//                 │                     producer (any thread) queues head, chunks, end;
//                 │                     a read on the socket watches for the client
//                 │                     leaving meanwhile and calls the reply's
//                 │                     on_client_gone (the request is cancelled)
//                 └─ body too large: 413, headers too large: 431, bad HTTP: 400, then close
// clang-format on
//
// Why Beast and not cpp-httplib: cpp-httplib gives each connection a worker
// thread for the whole of its handler, so a request waiting in calm's queue
// held a thread, and past the pool's size further requests waited in the
// library's own unbounded task list, invisible to calm (no 503, /health
// behind them). Here a waiting request costs a coroutine frame and a socket,
// and the I/O threads only parse and write.
//
// This layer knows nothing of calm: a handler gets the request and answers
// with a response now or with an AsyncReply it completes later.
//
// TLS (Options::tls): every connection first does its TLS handshake, bounded
// by the handshake timeout and counted against max_connections from its
// accept, so a client that connects and never handshakes holds one socket
// for that long and nothing else; then the same life as above, over the TLS
// stream. A client that speaks plain HTTP to a TLS port fails the handshake
// and is closed. One listener speaks one of the two, never both.
//
// Thread-safe: start() and stop() from any one thread; AsyncReply's producer
// calls from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace calm {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // without the query
  std::map<std::string, std::string> query;    // decoded; the last value of a repeated key
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;

  std::optional<std::string> header(const std::string& lower_name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// A response completed later, from any thread. The producer calls start()
// once, then (chunked only) write() any number of times, then end(); a
// non-chunked response is complete after start(). Calls after the client
// has gone are dropped.
class AsyncReply {
 public:
  virtual ~AsyncReply() = default;
  // chunked: the body is sent as it is written (server-sent events);
  // head.body, if any, is the first chunk.
  virtual void start(HttpResponse head, bool chunked) = 0;
  virtual void write(std::string chunk) = 0;
  virtual void end() = 0;
  // Called at most once, on an I/O thread, when the client closes its
  // connection before the reply has ended. Set it before returning the reply.
  virtual void on_client_gone(std::function<void()> callback) = 0;
};

// What a handler returns: a response now, or a function that the transport
// calls (at once, on the same I/O thread) with the reply that it will wait on.
struct HttpOutcome {
  std::optional<HttpResponse> now;
  std::function<void(std::shared_ptr<AsyncReply>)> later;
};

class HttpTransport {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 0;  // 0: a free port
    int io_threads = 2;
    size_t max_body_bytes = 1 << 20;
    size_t max_header_bytes = 16 << 10;
    // Open connections; a new one past it is answered 503 (Retry-After: 1)
    // and closed, so that idle or slow clients cannot take every socket.
    size_t max_connections = 1024;
    // A kept-alive connection, until its next request's head.
    std::chrono::seconds idle_timeout{60};
    std::chrono::seconds read_timeout{30};   // a request's body, once its head is in
    std::chrono::seconds write_timeout{30};  // each write

    // HTTPS: the certificate chain and key (PEM files); unset: plain HTTP.
    struct Tls {
      std::string cert_file;
      std::string key_file;
      std::chrono::milliseconds handshake_timeout{10000};
    };
    std::optional<Tls> tls;
  };
  // Called on an I/O thread for every request; must not block. An exception
  // it throws is answered 500.
  using Handler = std::function<HttpOutcome(HttpRequest&)>;
  // The body of an error the transport answers itself (400 bad HTTP, 413,
  // 431, 500, 503 past max_connections), in the wire format the handler speaks.
  using ErrorBody = std::function<HttpResponse(int status, const std::string& message)>;

  HttpTransport(Options options, Handler handler, ErrorBody error_body);
  ~HttpTransport();  // stop()

  // Binds and listens; returns the bound port. Throws std::runtime_error
  // naming the address when it cannot, and TlsFileError (server/tls_context.h)
  // when the TLS certificate or key cannot be used.
  int bind();
  // Starts the I/O threads; returns at once.
  void start();
  // Stops accepting, closes every connection, joins the I/O threads.
  // Idempotent.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace calm
