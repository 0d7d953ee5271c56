# Install rules: public headers, libpevledger (shared and static), the pevledger binary, a CMake
# package (find_package(pevledger CONFIG) -> pevledger::pevledger) and a pkg-config file; and
# CPack's Debian package of the same.
include(CMakePackageConfigHelpers)

install(TARGETS pevledger_shared pevledger_static EXPORT pevledger_targets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/pevledger DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp")
if(PEVLEDGER_BUILD_CLI)
  install(TARGETS pevledger RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

set(pev_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/pevledger)
install(EXPORT pevledger_targets NAMESPACE pevledger:: FILE pevledgerTargets.cmake DESTINATION ${pev_cmake_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/pevledgerConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/pevledgerConfig.cmake INSTALL_DESTINATION ${pev_cmake_dir})
# While the major version is 0, a minor version may change the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/pevledgerConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/pevledgerConfig.cmake ${PROJECT_BINARY_DIR}/pevledgerConfigVersion.cmake
        DESTINATION ${pev_cmake_dir})

list(JOIN pev_system_libraries " -l" pev_libs_private)
set(pev_libs_private "-l${pev_libs_private}")
file(RELATIVE_PATH pev_pc_to_prefix /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
configure_file(${PROJECT_SOURCE_DIR}/cmake/pevledger.pc.in ${PROJECT_BINARY_DIR}/pevledger.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/pevledger.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pevledger)
set(CPACK_PACKAGE_VENDOR "pevledger")
set(CPACK_PACKAGE_CONTACT "pevledger maintainers <maintainers@pevledger.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "settlement core for plug-in electric vehicle charging (library, headers, tool)")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
# The runtime dependencies are those of the binaries, as dpkg-shlibdeps finds them.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Debug information stays in the build tree: it is most of the binaries' size.
set(CPACK_STRIP_FILES ON)
include(CPack)
