# auth.cmake - the JWT verifier as its own static library until it is folded into herald_tokens.
if(NOT TARGET herald_auth)
  add_library(herald_auth STATIC ${CMAKE_CURRENT_LIST_DIR}/auth.c)
  target_link_libraries(herald_auth PUBLIC herald_core PkgConfig::JANSSON PkgConfig::CRYPTO)
endif()
