// Exposition: writes metrics in the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/), for the
// supervisor's metrics endpoint (metrics_server.h). One family at a time:
// its HELP and TYPE lines, then its samples, so that every sample of a
// family is in one group as the format requires. It owns only the text.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace posta {

class Exposition {
public:
    enum class Type { Counter, Gauge };
    using Label = std::pair<std::string_view, std::string_view>; // name (a valid label name), value (any bytes)

    // The content type of what text() holds.
    static constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

    // Starts a family: `name` is a valid metric name (a counter's ends in
    // _total), `help` one line of text. The samples that follow, until the
    // next family(), belong to it.
    void family(std::string_view name, Type, std::string_view help);
    // One sample of the current family, named as it, with `labels` in the
    // given order. Label values are escaped (backslash, double quote, line
    // feed); names are written as given.
    void sample(std::initializer_list<Label> labels, uint64_t value);
    void sample(std::initializer_list<Label> labels, double value);

    std::string const& text() const { return m_text; }
    std::string take() { return std::move(m_text); }

private:
    void begin_sample(std::initializer_list<Label> labels);

    std::string m_text;
    std::string m_family;
};

// The escaping of a label value (backslash, double quote, line feed) and of
// HELP text (backslash and line feed only).
void append_label_value(std::string& out, std::string_view value);
void append_help_text(std::string& out, std::string_view text);

}
