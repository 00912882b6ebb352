#include "text_lines.h"

namespace posta {

Result<std::vector<std::string_view>> split_lines(std::string_view text, char const* what)
{
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        size_t end = text.find('\n');
        if (end == std::string_view::npos)
            return Error::message(what, "unterminated line");
        lines.push_back(text.substr(0, end));
        text.remove_prefix(end + 1);
    }
    return lines;
}

}
