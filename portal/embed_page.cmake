# Writes OUT, a C++ file whose selfcare_page() returns the bytes of IN (the self-care page), with
# no substitution of any kind. Run at build time whenever IN changes.
file(READ "${IN}" page)
string(FIND "${page}" ")pevledger_page\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} holds the raw string's closing delimiter")
endif()
file(WRITE "${OUT}" "// Generated from portal/page/index.html by portal/embed_page.cmake: do not edit.\n"
  "#include \"portal/page.hpp\"\n\nnamespace pevledger::portal {\n\n"
  "std::string_view selfcare_page() {\n  static constexpr std::string_view page = R\"pevledger_page(")
file(APPEND "${OUT}" "${page}")
file(APPEND "${OUT}" ")pevledger_page\";\n  return page;\n}\n\n}  // namespace pevledger::portal\n")
