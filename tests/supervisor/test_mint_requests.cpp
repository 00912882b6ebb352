// MintRequests: answers matched to requests by id, each answered once, a
// bound on those in flight, deadlines, and the worker's end.
#include "supervisor/mint_requests.h"

#include <doctest/doctest.h>
#include <vector>

using namespace posta;

namespace {

// Records what each request was answered, in order.
struct Answers {
    std::vector<std::string> got;

    MintRequests::Done done(std::string name)
    {
        return [this, name](Result<std::string> outcome) {
            got.push_back(name + "=" + (outcome ? outcome.value() : "error:" + outcome.error().detail));
        };
    }
};

}

TEST_CASE("each answer reaches the request with its id, once")
{
    MintRequests requests(8);
    Answers answers;
    auto a = requests.add(answers.done("a"), 100);
    auto b = requests.add(answers.done("b"), 100);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a.value() != b.value());
    CHECK(a.value() != 0);
    CHECK(requests.answer(b.value(), std::string("tb")));
    CHECK(requests.answer(a.value(), std::string("ta")));
    CHECK(!requests.answer(a.value(), std::string("again")));
    CHECK(!requests.answer(12345, std::string("never asked")));
    CHECK(answers.got == std::vector<std::string> { "b=tb", "a=ta" });
    CHECK(requests.size() == 0);
}

TEST_CASE("no more than max_in_flight requests wait, and a refused one is never answered")
{
    MintRequests requests(2);
    Answers answers;
    REQUIRE(requests.add(answers.done("a"), 100).ok());
    auto b = requests.add(answers.done("b"), 100);
    REQUIRE(b.ok());
    auto c = requests.add(answers.done("c"), 100);
    CHECK(!c.ok());
    CHECK(c.error().detail.find("try again") != std::string::npos);
    requests.cancel(b.value());
    CHECK(requests.size() == 1);
    CHECK(requests.add(answers.done("d"), 100).ok());
    requests.fail_all(Error::message("mint", "gone"));
    CHECK(answers.got == std::vector<std::string> { "a=error:gone", "d=error:gone" });
}

TEST_CASE("requests past their deadline are answered with a timeout, the others wait on")
{
    MintRequests requests(8);
    Answers answers;
    auto early = requests.add(answers.done("early"), 100);
    auto late = requests.add(answers.done("late"), 300);
    REQUIRE(early.ok());
    REQUIRE(late.ok());
    CHECK(requests.next_deadline() == 100);
    requests.expire(99);
    CHECK(answers.got.empty());
    requests.expire(100);
    REQUIRE(answers.got.size() == 1);
    CHECK(answers.got[0].starts_with("early=error:"));
    CHECK(answers.got[0].find("in time") != std::string::npos);
    CHECK(requests.next_deadline() == 300);
    // The worker's answer to the expired request comes too late: for nobody.
    CHECK(!requests.answer(early.value(), std::string("t")));
    CHECK(requests.answer(late.value(), std::string("t2")));
    CHECK(!requests.next_deadline().has_value());
}

TEST_CASE("an answer's callback may make a new request")
{
    MintRequests requests(1);
    Answers answers;
    std::optional<Result<uint32_t>> again;
    auto first = requests.add([&](Result<std::string>) { again = requests.add(answers.done("second"), 200); }, 100);
    REQUIRE(first.ok());
    CHECK(requests.answer(first.value(), std::string("t")));
    REQUIRE(again.has_value());
    CHECK(again->ok()); // the first no longer counted against the bound
    CHECK(requests.size() == 1);
}
