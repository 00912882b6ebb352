#include "http_message.h"

#include <nlohmann/json.hpp>

namespace posta {

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}

bool iequals(std::string_view a, std::string_view b)
{
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i]))
            return false;
    }
    return true;
}

std::string ascii_lower(std::string_view text)
{
    std::string out(text);
    for (char& c : out)
        c = lower(c);
    return out;
}

std::string_view trim_ows(std::string_view text)
{
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
        text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
        text.remove_suffix(1);
    return text;
}

void Headers::add(std::string name, std::string value) { m_fields.emplace_back(std::move(name), std::move(value)); }

void Headers::set(std::string_view name, std::string value)
{
    remove(name);
    m_fields.emplace_back(std::string(name), std::move(value));
}

void Headers::remove(std::string_view name)
{
    std::erase_if(m_fields, [&](Field const& field) { return iequals(field.first, name); });
}

std::optional<std::string_view> Headers::get(std::string_view name) const
{
    for (auto const& field : m_fields) {
        if (iequals(field.first, name))
            return std::string_view(field.second);
    }
    return std::nullopt;
}

size_t Headers::count(std::string_view name) const
{
    size_t n = 0;
    for (auto const& field : m_fields) {
        if (iequals(field.first, name))
            ++n;
    }
    return n;
}

Response Response::json(int status, nlohmann::json const& value)
{
    Response out;
    out.status = status;
    out.headers.set("Content-Type", "application/json");
    out.body = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return out;
}

Response Response::error(int status, std::string_view code, std::string_view message)
{
    return json(status, nlohmann::json { { "error", code }, { "message", message } });
}

char const* status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

bool status_forbids_body(int status) { return (status >= 100 && status < 200) || status == 204 || status == 304; }

}
