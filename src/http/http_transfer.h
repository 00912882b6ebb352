// HttpTransfer: one request of the HttpClient (http_client.h) while curl
// works on it: the request, its CURL handle and header list, the response
// as it arrives, and the callback waiting for it. This file's half is what
// concerns one transfer alone: checking the request and setting curl's
// options, curl's per-transfer callbacks (body, header lines, opening a
// socket through the connect hook), and turning curl's outcome into a
// Result. Private to src/http; the client owns every transfer.
#pragma once

#include "http/http_client.h"

#include <curl/curl.h>

#include <memory>
#include <string>

namespace posta {

// The Error of a failed request: op "http", the kind as code, the URL as
// context.
Error http_error(HttpClientError kind, std::string detail, std::string url);

struct EasyDeleter {
    void operator()(CURL* easy) const noexcept { curl_easy_cleanup(easy); }
};
struct SlistDeleter {
    void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};

struct HttpTransfer {
    enum class Overflow { None, Head, Body };

    HttpRequestId id = 0;
    HttpClientRequest request;
    HttpClient::Callback callback;
    std::unique_ptr<curl_slist, SlistDeleter> header_list; // outlives easy, which points at it
    std::unique_ptr<CURL, EasyDeleter> easy;
    bool in_multi = false;
    HttpClientResponse response;
    size_t head_bytes = 0;
    Overflow overflow = Overflow::None;
    char error[CURL_ERROR_SIZE] = {};
    HttpClient::ConnectHook const* connect_hook = nullptr; // the client's; may be empty
    std::string refusal; // the connect hook's latest, if it refused an address

    // Validates the request and makes its CURL handle, which verifies an
    // https peer against `trust_anchors` (PEM, copied into the handle) or,
    // when empty, the system's CA store. The transfer must not move
    // afterwards: curl keeps pointers to it, its body and its error buffer.
    Result<void> prepare(std::string const& user_agent, std::string const& trust_anchors);

    // The outcome of a transfer curl finished with `code`.
    Result<HttpClientResponse> outcome(CURLcode code);
};

}
