#pragma once
// The self-care page (portal/page/index.html), compiled in so that `serve --http` needs no files
// beside the binary and the page works with no internet.

#include <string_view>

namespace pevledger::portal {

[[nodiscard]] std::string_view selfcare_page();

}  // namespace pevledger::portal
