# install.cmake - the install-time half of `cmake --install` (and of CPack, which runs the same
# install): lays out /etc/herald/herald.conf and the systemd unit.
#
# Paths are decided here, when CMAKE_INSTALL_PREFIX is final, not at configure time: cpack installs
# the build tree with the prefix /usr whatever it was configured with. As GNUInstallDirs does for
# its FULL_ paths, the prefix /usr puts the configuration in /etc (and the unit in
# /lib/systemd/system, where Debian 12 packages ship units); any other prefix keeps both under it,
# so `cmake --install build --prefix /opt/herald` writes nothing outside /opt/herald. DESTDIR is
# honoured by file(INSTALL).
#
# Expects HERALD_SOURCE_DIR, HERALD_BINARY_DIR, HERALD_BINDIR and HERALD_DOCDIR (relative to the
# prefix) from the install(CODE) call in the top CMakeLists.txt.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(etc "/etc")
  set(unitdir "/lib/systemd/system")
else()
  set(etc "${CMAKE_INSTALL_PREFIX}/etc")
  set(unitdir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
endif()
set(stage "${HERALD_BINARY_DIR}/packaging")
file(MAKE_DIRECTORY "${stage}")

# herald.conf: config/herald.conf (every key with its built-in default, the reference) with the
# two settings a packaged service needs to pass --check-config and run under systemd. Each
# replaced line must exist, so a change to the reference cannot silently drop one.
file(READ "${HERALD_SOURCE_DIR}/config/herald.conf" conf)
foreach(pair
    "runtime.dir = run|runtime.dir = /run/herald"
    "auth.jwt.jwks_file =|auth.jwt.jwks_file = ${etc}/herald/jwks.json")
  string(REPLACE "|" ";" pair "${pair}")
  list(GET pair 0 from)
  list(GET pair 1 to)
  string(FIND "${conf}" "\n${from}\n" at)
  if(at LESS 0)
    message(FATAL_ERROR "config/herald.conf has no line \"${from}\" to set for the package")
  endif()
  string(REPLACE "\n${from}\n" "\n${to}\n" conf "${conf}")
endforeach()
string(CONCAT conf
  "# Installed with herald: config/herald.conf with runtime.dir = /run/herald (the unit's\n"
  "# RuntimeDirectory) and auth.jwt.jwks_file set. Put your identity provider's JWKS there (e.g.\n"
  "# Cognito's https://cognito-idp.<region>.amazonaws.com/<pool>/.well-known/jwks.json), or clear\n"
  "# it and set auth.jwt.hs256_secret_file; then set redis.url and kafka.bootstrap.servers.\n"
  "${conf}")
file(WRITE "${stage}/herald.conf" "${conf}")

# An existing herald.conf is an operator's: `cmake --install` over it leaves it alone and puts the
# new one beside it (the Debian package leaves this to dpkg's conffile handling).
set(conf_name herald.conf)
if(EXISTS "$ENV{DESTDIR}${etc}/herald/herald.conf")
  file(READ "$ENV{DESTDIR}${etc}/herald/herald.conf" old)
  if(NOT old STREQUAL conf)
    set(conf_name herald.conf.dist)
    message(STATUS "Keeping $ENV{DESTDIR}${etc}/herald/herald.conf; the new one is herald.conf.dist")
  endif()
endif()
file(INSTALL "${stage}/herald.conf" DESTINATION "${etc}/herald" RENAME "${conf_name}"
  FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)

set(HERALD_BINDIR "${CMAKE_INSTALL_PREFIX}/${HERALD_BINDIR}")
set(HERALD_DOCDIR "${CMAKE_INSTALL_PREFIX}/${HERALD_DOCDIR}")
set(HERALD_SYSCONFDIR "${etc}")
configure_file("${HERALD_SOURCE_DIR}/packaging/herald.service.in" "${stage}/herald.service" @ONLY)
file(INSTALL "${stage}/herald.service" DESTINATION "${unitdir}"
  FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
