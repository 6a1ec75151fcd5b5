#include "server/http_transport.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <type_traits>

#include "server/tls_context.h"

namespace calm {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

constexpr int kListenBacklog = 1024;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding of one query component; a
// malformed escape is kept as it is.
std::string percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%' && i + 2 < in.size() && hex_value(in[i + 1]) >= 0 &&
               hex_value(in[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2]));
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

HttpRequest translate(const http::request<http::string_body>& msg) {
  HttpRequest req;
  req.method = std::string(msg.method_string());
  const std::string_view target(msg.target().data(), msg.target().size());
  const size_t q = target.find('?');
  req.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
      const size_t amp = rest.find('&');
      const std::string_view pair = rest.substr(0, amp);
      const size_t eq = pair.find('=');
      if (!pair.empty()) {
        req.query[percent_decode(pair.substr(0, eq))] =
            eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1));
      }
      if (amp == std::string_view::npos) break;
      rest = rest.substr(amp + 1);
    }
  }
  for (const auto& field : msg) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    req.headers[name] = std::string(field.value());
  }
  req.body = msg.body();
  return req;
}

template <class Message>
void set_fields(Message& res, const HttpResponse& r, bool keep_alive) {
  res.set(http::field::server, "calm");
  res.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) res.set(name, value);
  res.keep_alive(keep_alive);
}

bool client_gone(const beast::error_code& ec) {
  // Over TLS: a client that closes its TCP connection without TLS's
  // close_notify (most do), or whose records do not decrypt; neither can be
  // answered.
  return ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::operation_aborted ||
         ec == beast::error::timeout || ec == http::error::end_of_stream ||
         ec == ssl::error::stream_truncated || ec.category() == asio::error::get_ssl_category();
}

// The AsyncReply of one connection. Producers (any thread) queue under the
// mutex and post a wake-up to the connection's strand; the connection's
// coroutine drains. `wake` and `gone_callback` are touched only on the strand.
class ConnectionReply : public AsyncReply, public std::enable_shared_from_this<ConnectionReply> {
 public:
  explicit ConnectionReply(asio::any_io_executor strand)
      : strand_(strand), wake_(strand, asio::steady_timer::time_point::max()) {}

  void start(HttpResponse head, bool chunked) override {
    {
      std::lock_guard lock(mutex_);
      if (head_ || gone_) return;
      head_ = std::move(head);
      chunked_ = chunked;
      if (!chunked) ended_ = true;
    }
    notify();
  }
  void write(std::string chunk) override {
    {
      std::lock_guard lock(mutex_);
      if (!head_ || ended_ || gone_ || chunk.empty()) return;
      chunks_.push_back(std::move(chunk));
    }
    notify();
  }
  void end() override {
    {
      std::lock_guard lock(mutex_);
      if (ended_ || gone_) return;
      ended_ = true;
    }
    notify();
  }
  void on_client_gone(std::function<void()> callback) override {
    gone_callback_ = std::move(callback);
  }

  // The connection's side (on the strand).
  struct Batch {
    std::optional<HttpResponse> head;
    bool chunked = false;
    std::deque<std::string> chunks;
    bool ended = false;
  };
  Batch take() {
    std::lock_guard lock(mutex_);
    Batch b;
    if (head_ && !head_taken_) {
      b.head = std::move(head_);
      head_ = HttpResponse{};  // keeps "started" true for later calls
      head_taken_ = true;
    }
    b.chunked = chunked_;
    b.chunks.swap(chunks_);
    b.ended = ended_;
    end_taken_ = ended_;
    return b;
  }
  // Whether take() would return something new. The wake-up a producer posts
  // is lost if it lands while the connection is writing, so the connection
  // asks this before it sleeps.
  bool has_news() {
    std::lock_guard lock(mutex_);
    return (head_ && !head_taken_) || !chunks_.empty() || (ended_ && !end_taken_);
  }
  void mark_gone() {
    {
      std::lock_guard lock(mutex_);
      gone_ = true;
    }
    if (auto callback = std::move(gone_callback_)) callback();
  }
  asio::steady_timer& wake() { return wake_; }
  void notify() {
    asio::post(strand_, [self = shared_from_this()] { self->wake_.cancel(); });
  }

 private:
  asio::any_io_executor strand_;
  asio::steady_timer wake_;
  std::function<void()> gone_callback_;
  std::mutex mutex_;
  std::optional<HttpResponse> head_;  // guarded by mutex_
  bool head_taken_ = false;           // guarded by mutex_
  bool chunked_ = false;              // guarded by mutex_
  std::deque<std::string> chunks_;    // guarded by mutex_
  bool ended_ = false;                // guarded by mutex_
  bool end_taken_ = false;            // guarded by mutex_
  bool gone_ = false;                 // guarded by mutex_
};

}  // namespace

std::optional<std::string> HttpRequest::header(const std::string& lower_name) const {
  const auto it = headers.find(lower_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

struct HttpTransport::Impl {
  Options options;
  Handler handler;
  ErrorBody error_body;
  std::shared_ptr<ssl::context> tls;  // set by bind() when options.tls; then read-only
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  std::mutex mutex;
  std::condition_variable idle;
  bool stopped = false;  // guarded by mutex
  int answering = 0;     // guarded by mutex; requests read whose response is not yet written
  std::atomic<size_t> connections{0};  // open sessions (counted at accept, until they end)

  // Counts one request from its handler call until its response is written,
  // so that stop() lets the responses already decided reach their clients.
  struct Answering {
    explicit Answering(Impl& impl) : impl(impl) {
      std::lock_guard lock(impl.mutex);
      impl.answering++;
    }
    ~Answering() {
      {
        std::lock_guard lock(impl.mutex);
        impl.answering--;
      }
      impl.idle.notify_all();
    }
    Impl& impl;
  };

  awaitable<void> accept_loop();
  awaitable<void> session(tcp::socket socket);
  awaitable<void> refuse(tcp::socket socket);
  // The TLS handshake, within options.tls->handshake_timeout; false: closed.
  awaitable<bool> handshake(TlsStream& stream);
  // A connection's requests, one after another, until it closes; the same
  // for both streams (Stream: PlainStream or TlsStream).
  template <class Stream>
  awaitable<void> serve(Stream& stream);
  template <class Stream>
  awaitable<void> answer_refused(Stream& stream);
  template <class Stream>
  awaitable<bool> write_now(Stream& stream, const HttpResponse& r, unsigned version,
                            bool keep_alive);
  template <class Stream>
  awaitable<bool> serve_later(Stream& stream, beast::flat_buffer& buffer,
                              const std::function<void(std::shared_ptr<AsyncReply>)>& later,
                              unsigned version, bool keep_alive);
};

HttpTransport::HttpTransport(Options options, Handler handler, ErrorBody error_body)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->handler = std::move(handler);
  impl_->error_body = std::move(error_body);
}

HttpTransport::~HttpTransport() {
  stop();
}

int HttpTransport::bind() {
  if (impl_->options.tls && !impl_->tls) {
    impl_->tls =
        make_server_tls_context(impl_->options.tls->cert_file, impl_->options.tls->key_file);
  }
  beast::error_code ec;
  const auto address = asio::ip::make_address(impl_->options.host, ec);
  const std::string where = impl_->options.host + ":" + std::to_string(impl_->options.port);
  if (ec) throw std::runtime_error("cannot listen on " + where + ": not an IP address");
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(impl_->options.port));
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(kListenBacklog, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + where + " (" + ec.message() +
                             ": address in use, or not an address of this machine)");
  }
  return acceptor.local_endpoint().port();
}

void HttpTransport::start() {
  asio::co_spawn(impl_->ioc, impl_->accept_loop(), asio::detached);
  for (int i = 0; i < std::max(1, impl_->options.io_threads); ++i) {
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  }
}

void HttpTransport::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  asio::post(impl_->ioc, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
  });
  {
    // Responses being written get a bounded moment to reach their clients;
    // idle kept-alive connections are simply closed.
    std::unique_lock lock(impl_->mutex);
    impl_->idle.wait_for(lock, impl_->options.write_timeout, [&] { return impl_->answering == 0; });
  }
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

awaitable<void> HttpTransport::Impl::accept_loop() {
  while (true) {
    tcp::socket socket(asio::make_strand(ioc));
    beast::error_code ec;
    co_await acceptor.async_accept(socket, asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // Out of file descriptors, say: the connection is refused, the server goes on.
      spdlog::warn("accept: {}", ec.message());
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);  // each streamed token at once
    const auto executor = socket.get_executor();
    if (connections.load() >= options.max_connections) {
      asio::co_spawn(executor, refuse(std::move(socket)), asio::detached);
      continue;
    }
    connections++;  // here, not in the session: the next accept must see it
    asio::co_spawn(executor, session(std::move(socket)), asio::detached);
  }
}

// One connection too many: 503 with Retry-After, then closed, without
// reading its request. Over TLS the answer needs the handshake first (a TLS
// client could not read it otherwise), bounded like any other.
awaitable<void> HttpTransport::Impl::refuse(tcp::socket socket) {
  if (!tls) {
    PlainStream stream(std::move(socket));
    co_await answer_refused(stream);
    co_return;
  }
  TlsStream stream(std::move(socket), *tls);
  if (co_await handshake(stream)) co_await answer_refused(stream);
}

template <class Stream>
awaitable<void> HttpTransport::Impl::answer_refused(Stream& stream) {
  HttpResponse r =
      error_body(503, "too many open connections (server.max_connections is " +
                          std::to_string(options.max_connections) + "); try again shortly");
  r.headers.emplace_back("Retry-After", "1");
  co_await write_now(stream, r, 11, /*keep_alive=*/false);
  beast::error_code ec;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ec);
}

awaitable<bool> HttpTransport::Impl::handshake(TlsStream& stream) {
  beast::error_code ec;
  beast::get_lowest_layer(stream).expires_after(options.tls->handshake_timeout);
  co_await stream.async_handshake(ssl::stream_base::server,
                                  asio::redirect_error(use_awaitable, ec));
  if (ec) {
    // Plain HTTP to this port, a client that gave up or never spoke, a
    // protocol or certificate disagreement: nothing to answer.
    spdlog::debug("TLS handshake failed: {}", ec.message());
    beast::get_lowest_layer(stream).close();
    co_return false;
  }
  co_return true;
}

template <class Stream>
awaitable<bool> HttpTransport::Impl::write_now(Stream& stream, const HttpResponse& r,
                                               unsigned version, bool keep_alive) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  set_fields(res, r, keep_alive);
  res.body() = r.body;
  res.prepare_payload();
  beast::error_code ec;
  beast::get_lowest_layer(stream).expires_after(options.write_timeout);
  co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
  co_return !ec;
}

awaitable<void> HttpTransport::Impl::session(tcp::socket socket) {
  struct Leaving {  // however the session ends (the handshake included), it no longer counts
    std::atomic<size_t>& connections;
    ~Leaving() { connections--; }
  } leaving{connections};
  if (!tls) {
    PlainStream stream(std::move(socket));
    co_await serve(stream);
    co_return;
  }
  TlsStream stream(std::move(socket), *tls);
  if (co_await handshake(stream)) co_await serve(stream);
}

template <class Stream>
awaitable<void> HttpTransport::Impl::serve(Stream& stream) {
  auto& tcp_layer = beast::get_lowest_layer(stream);
  beast::flat_buffer buffer;
  bool keep_alive = true;
  while (keep_alive) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options.max_body_bytes);
    parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
    beast::error_code ec;
    tcp_layer.expires_after(options.idle_timeout);
    co_await http::async_read_header(stream, buffer, parser,
                                     asio::redirect_error(use_awaitable, ec));
    unsigned version = 11;
    if (!ec) {
      version = parser.get().version();
      // curl and others wait for this before sending a larger body.
      if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
        http::response<http::empty_body> go_on{http::status::continue_, version};
        tcp_layer.expires_after(options.write_timeout);
        co_await http::async_write(stream, go_on, asio::redirect_error(use_awaitable, ec));
      }
    }
    if (!ec && !parser.is_done()) {
      tcp_layer.expires_after(options.read_timeout);
      co_await http::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
    }
    if (ec) {
      if (client_gone(ec)) break;
      int status = 400;
      std::string message = "bad HTTP request: " + ec.message();
      if (ec == http::error::body_limit) {
        status = 413;
        message = "the request body is larger than this server accepts (server.max_body_bytes)";
      } else if (ec == http::error::header_limit) {
        status = 431;
        message = "the request's headers are larger than this server accepts";
      }
      co_await write_now(stream, error_body(status, message), version, false);
      break;
    }
    http::request<http::string_body> msg = parser.release();
    keep_alive = msg.keep_alive();
    const Answering answering(*this);
    HttpRequest request = translate(msg);
    HttpOutcome outcome;
    try {
      outcome = handler(request);
    } catch (const std::exception& e) {
      spdlog::error("unhandled exception: {}", e.what());
      outcome.now = error_body(500, std::string("internal error: ") + e.what());
    }
    if (outcome.now) {
      if (!co_await write_now(stream, *outcome.now, version, keep_alive)) break;
    } else if (outcome.later) {
      keep_alive = co_await serve_later(stream, buffer, outcome.later, version, keep_alive);
    } else {
      co_await write_now(stream, error_body(500, "internal error: no response"), version, false);
      break;
    }
  }
  // Over TLS too: no close_notify exchange, whose wait for the client's
  // answer would hold the socket; every response is delimited by its length
  // or its last chunk, so the client has all of it.
  beast::error_code ec;
  tcp_layer.socket().shutdown(tcp::socket::shutdown_send, ec);
  tcp_layer.close();
}

template <class Stream>
awaitable<bool> HttpTransport::Impl::serve_later(
    Stream& stream, beast::flat_buffer& buffer,
    const std::function<void(std::shared_ptr<AsyncReply>)>& later, unsigned version,
    bool keep_alive) {
  const auto strand = co_await asio::this_coro::executor;
  auto reply = std::make_shared<ConnectionReply>(strand);

  // Watch the socket while the reply is pending: a client that closes its
  // connection (read: end of file or error) cancels its request. Bytes that
  // arrive instead (a pipelined request) are kept for the next read.
  struct Watch {
    bool done = false;
    beast::error_code ec;
    size_t bytes = 0;
  };
  auto watch = std::make_shared<Watch>();
  auto& tcp_layer = beast::get_lowest_layer(stream);
  auto on_read = [watch, reply](beast::error_code ec, size_t bytes) {
    watch->done = true;
    watch->ec = ec;
    watch->bytes = bytes;
    reply->wake().cancel();
  };
  // With no deadline: a reply may wait in the queue or between tokens for as
  // long as it takes. The writes below set only the write side's deadline
  // (Beast's tcp_stream leaves a pending read's alone).
  tcp_layer.expires_never();
  if constexpr (std::is_same_v<Stream, TlsStream>) {
    stream.async_read_some(buffer.prepare(4096), on_read);  // decrypted bytes
  } else {
    tcp_layer.socket().async_read_some(buffer.prepare(4096), on_read);
  }
  try {
    later(reply);
  } catch (const std::exception& e) {
    // An exception must never leave the coroutine: it would end the I/O
    // thread's run() and with it the process.
    spdlog::error("unhandled exception: {}", e.what());
    reply->start(error_body(500, std::string("internal error: ") + e.what()), false);
  }

  bool ok = true;
  bool head_written = false;
  std::optional<http::response<http::empty_body>> head;
  std::optional<http::response_serializer<http::empty_body>> serializer;
  beast::error_code ec;
  while (true) {
    ConnectionReply::Batch batch = reply->take();
    if (batch.head && !batch.chunked) {
      ok = co_await write_now(stream, *batch.head, version, keep_alive);
      break;
    }
    if (batch.head) {
      head.emplace(static_cast<http::status>(batch.head->status), version);
      set_fields(*head, *batch.head, keep_alive);
      head->chunked(true);
      serializer.emplace(*head);
      tcp_layer.expires_after(options.write_timeout);
      co_await http::async_write_header(stream, *serializer,
                                        asio::redirect_error(use_awaitable, ec));
      if (ec) {
        ok = false;
        break;
      }
      head_written = true;
      if (!batch.head->body.empty()) batch.chunks.push_front(std::move(batch.head->body));
    }
    if (head_written) {
      for (const auto& chunk : batch.chunks) {
        tcp_layer.expires_after(options.write_timeout);
        co_await asio::async_write(stream, http::make_chunk(asio::buffer(chunk)),
                                   asio::redirect_error(use_awaitable, ec));
        if (ec) break;
      }
      if (!ec && batch.ended) {
        tcp_layer.expires_after(options.write_timeout);
        co_await asio::async_write(stream, http::make_chunk_last(),
                                   asio::redirect_error(use_awaitable, ec));
        if (!ec) break;
      }
      if (ec) {
        ok = false;
        break;
      }
    }
    if (watch->done && watch->bytes == 0) {
      ok = false;  // the client has gone
      break;
    }
    if (reply->has_news()) continue;
    beast::error_code wait_ec;
    co_await reply->wake().async_wait(asio::redirect_error(use_awaitable, wait_ec));
  }
  if (!ok) reply->mark_gone();
  // The watching read must finish before the connection reads again.
  if (!watch->done) {
    beast::error_code cancel_ec;
    tcp_layer.socket().cancel(cancel_ec);
    while (!watch->done) {
      beast::error_code wait_ec;
      co_await reply->wake().async_wait(asio::redirect_error(use_awaitable, wait_ec));
    }
  }
  if (watch->bytes > 0) buffer.commit(watch->bytes);
  co_return ok&& keep_alive;
}

}  // namespace calm
