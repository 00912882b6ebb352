// guard_callback: the body of every noexcept C callback (libuv, llhttp) in
// both processes. An exception escaping a noexcept function would call
// std::terminate and take every identity down; here it is logged as one
// line naming the callback, and the process keeps serving.
#pragma once

#include "common/log.h"

#include <exception>

namespace posta {

template<typename Body>
void guard_callback(char const* where, Body&& body) noexcept
{
    try {
        body();
    } catch (std::exception const& e) {
        log::error("%s: unexpected exception: %s; carrying on", where, e.what());
    } catch (...) {
        log::error("%s: unexpected exception; carrying on", where);
    }
}

}
