# Installation rules and the Debian package: `cmake --build build --target package` (CPack DEB)
# writes build/sluice_<version>-<release>_<arch>.deb. The package holds the `sluice` binary and
# what a host needs around it; test tools, tests and benchmarks have no install rules and stay
# out. Debian 12 paths: the unit in /lib/systemd/system (not yet /usr/lib in bookworm), the
# config as a conffile under /etc/sluice, docs under /usr/share/doc/sluice, the rest under
# /usr/share/sluice. deploy/debian holds the maintainer scripts (system user, state directory,
# secrets, systemd), docs/packaging.md explains the choices and the lintian run.

include(GNUInstallDirs)

set(SLUICE_PACKAGE_MAINTAINER "Sluice maintainers <sluice-maintainers@users.noreply.github.com>"
    CACHE STRING "Maintainer field of the Debian package")
set(SLUICE_DEB_RELEASE 1 CACHE STRING "Debian revision of the package")
set(SLUICE_DEB_VERSION ${PROJECT_VERSION}-${SLUICE_DEB_RELEASE})

install(TARGETS sluice RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES deploy/sluice.service deploy/sluice@.service DESTINATION /lib/systemd/system)
install(FILES deploy/sluice.example.yaml DESTINATION /etc/sluice RENAME sluice.yaml)
# The production schemas; TestSchema and test/ (the Event Platform example) are for the tests,
# the README is the repository's.
install(DIRECTORY schemas/ DESTINATION ${CMAKE_INSTALL_DATADIR}/sluice/schemas
        PATTERN TestSchema EXCLUDE PATTERN test EXCLUDE PATTERN README.md EXCLUDE)
install(FILES deploy/grafana/sluice-dashboard.json
        DESTINATION ${CMAKE_INSTALL_DATADIR}/sluice/grafana)
install(FILES deploy/prometheus/sluice-alerts.yml deploy/prometheus/sluice-alerts.test.yml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/sluice/prometheus)
set(doc_dir ${CMAKE_INSTALL_DATADIR}/doc/sluice)
install(FILES README.md docs/architecture.md docs/operations.md docs/reference.md
              docs/security.md docs/packaging.md deploy/debian/copyright
        DESTINATION ${doc_dir})
install(FILES deploy/sluice.example.yaml DESTINATION ${doc_dir}/examples)
# The lintian tags this package keeps on purpose, each explained (docs/packaging.md).
install(FILES deploy/debian/lintian-overrides DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides
        RENAME sluice)

# Debian wants the changelog and the manual page compressed with gzip -9n (no name, no time).
# Its date is the commit's, so the same revision packs the same changelog.
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} log -1 --format=%cD
                  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} RESULT_VARIABLE git_result
                  OUTPUT_VARIABLE SLUICE_CHANGELOG_DATE OUTPUT_STRIP_TRAILING_WHITESPACE
                  ERROR_QUIET)
endif()
if(NOT git_result EQUAL 0 OR NOT SLUICE_CHANGELOG_DATE)
  string(TIMESTAMP SLUICE_CHANGELOG_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
endif()
configure_file(deploy/debian/changelog.in ${PROJECT_BINARY_DIR}/package/changelog.Debian @ONLY)
set(package_gz ${PROJECT_BINARY_DIR}/package/changelog.Debian.gz
               ${PROJECT_BINARY_DIR}/package/sluice.1.gz)
add_custom_command(
  OUTPUT ${package_gz}
  COMMAND gzip -9nc ${PROJECT_BINARY_DIR}/package/changelog.Debian
          > ${PROJECT_BINARY_DIR}/package/changelog.Debian.gz
  COMMAND gzip -9nc ${PROJECT_SOURCE_DIR}/deploy/sluice.1 > ${PROJECT_BINARY_DIR}/package/sluice.1.gz
  DEPENDS ${PROJECT_BINARY_DIR}/package/changelog.Debian ${PROJECT_SOURCE_DIR}/deploy/sluice.1
  COMMENT "Compressing the Debian changelog and the manual page")
add_custom_target(sluice_package_files ALL DEPENDS ${package_gz})
install(FILES ${PROJECT_BINARY_DIR}/package/changelog.Debian.gz DESTINATION ${doc_dir})
install(FILES ${PROJECT_BINARY_DIR}/package/sluice.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sluice)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Kafka event-logging streams into MariaDB, exactly once")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "Sluice consumes EventLogging capsules (JSON) from Kafka and batch-inserts them\n\
into MariaDB, one table per schema revision, exactly once and in partition\n\
order. Around database maintenance an operator pauses it: it closes every\n\
MariaDB connection, spools events durably to a local RocksDB, and after resume\n\
drains the spool in order ahead of live traffic. When MariaDB goes away or\n\
turns read-only it does the same by itself. Bad events go to a dead-letter\n\
table with a reason. Includes a systemd unit, a Grafana dashboard and\n\
Prometheus alert rules.")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${SLUICE_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_RELEASE ${SLUICE_DEB_RELEASE})
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Library dependencies from dpkg-shlibdeps; adduser for postinst (runuser is essential).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
    ${PROJECT_SOURCE_DIR}/deploy/debian/prerm ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
