# ctl.cmake - heraldctl, the operations tool: library herald_ctl (commands and helpers) and the
# executable. Included from dispatcher/CMakeLists.txt; guarded so a second include is harmless.
if(NOT TARGET heraldctl)
  set(HERALD_CTL_DIR ${CMAKE_SOURCE_DIR}/dispatcher)
  add_library(herald_ctl STATIC
    ${HERALD_CTL_DIR}/ctl_util.c ${HERALD_CTL_DIR}/ctl_tokens.c ${HERALD_CTL_DIR}/ctl_bulk.c
    ${HERALD_CTL_DIR}/ctl_diagnose.c ${HERALD_CTL_DIR}/ctl_check.c ${HERALD_CTL_DIR}/ctl_probe.c
    ${HERALD_CTL_DIR}/ctl_dlq.c)
  target_link_libraries(herald_ctl PUBLIC herald_tokens herald_db herald_config herald_core
    PkgConfig::UV PkgConfig::JANSSON PkgConfig::CURL PkgConfig::RDKAFKA)
  # push/receipts come from the expo helper's ctl_expo.c once it is in the tree.
  if(EXISTS ${HERALD_CTL_DIR}/ctl_expo.c)
    target_sources(herald_ctl PRIVATE ${HERALD_CTL_DIR}/ctl_expo.c)
    target_compile_definitions(herald_ctl PUBLIC HERALD_HAVE_CTL_EXPO)
    if(TARGET herald_expo)
      target_link_libraries(herald_ctl PUBLIC herald_expo)
    endif()
  endif()
  add_executable(heraldctl ${HERALD_CTL_DIR}/heraldctl.c)
  target_link_libraries(heraldctl PRIVATE herald_ctl)
endif()
