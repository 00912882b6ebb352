#include "exposition.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace posta {

void append_label_value(std::string& out, std::string_view value)
{
    for (char c : value) {
        switch (c) {
        case '\\':
            out += "\\\\";
            break;
        case '"':
            out += "\\\"";
            break;
        case '\n':
            out += "\\n";
            break;
        default:
            out += c;
        }
    }
}

void append_help_text(std::string& out, std::string_view text)
{
    for (char c : text) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
}

void Exposition::family(std::string_view name, Type type, std::string_view help)
{
    m_family.assign(name);
    m_text.append("# HELP ").append(name).append(1, ' ');
    append_help_text(m_text, help);
    m_text.append("\n# TYPE ").append(name).append(type == Type::Counter ? " counter\n" : " gauge\n");
}

void Exposition::begin_sample(std::initializer_list<Label> labels)
{
    m_text.append(m_family);
    if (labels.size() == 0) {
        m_text.append(1, ' ');
        return;
    }
    char separator = '{';
    for (auto const& [name, value] : labels) {
        m_text.append(1, separator).append(name).append("=\"");
        append_label_value(m_text, value);
        m_text.append(1, '"');
        separator = ',';
    }
    m_text.append("} ");
}

void Exposition::sample(std::initializer_list<Label> labels, uint64_t value)
{
    begin_sample(labels);
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
    m_text.append(digits, end).append(1, '\n');
}

void Exposition::sample(std::initializer_list<Label> labels, double value)
{
    begin_sample(labels);
    if (std::isnan(value)) {
        m_text.append("NaN\n");
        return;
    }
    if (std::isinf(value)) {
        m_text.append(value > 0 ? "+Inf\n" : "-Inf\n");
        return;
    }
    // Seconds with millisecond resolution are what we expose; %.17g would
    // print 1764648000.1230001 for a timestamp.
    char digits[64];
    int n = std::snprintf(digits, sizeof digits, "%.3f", value);
    m_text.append(digits, static_cast<size_t>(n)).append(1, '\n');
}

}
