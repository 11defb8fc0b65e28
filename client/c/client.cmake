# client.cmake - librmclient (rm_client, rm::client), the `remotemedia` CLI, their install
# rules and their end-to-end test. Included from client/c/CMakeLists.txt.
#
# The library depends only on the gRPC C core, libcrypto (the PEM checks; the core needs it
# anyway), protobuf-c, jansson, the generated wire
# messages (rm_proto) and the wire layer's proto-only half (rm_wire_proto, over rm_base), all
# linked into the shared library; never on the engine. The CLI additionally links the engine
# and the wire layer's engine half (rm_wire) for in-process runs, and libsndfile for WAV.

set(RM_CLIENT_DIR ${CMAKE_CURRENT_LIST_DIR})

# grpc.health.v1 messages for the client's own use (rm_proto_std is the server's and holds
# reflection and the descriptor set; the client needs two tiny messages). Kept apart from
# RM_GEN_DIR so the two generations never write the same file.
set(RM_CLIENT_GEN_DIR ${CMAKE_BINARY_DIR}/client_gen)
set(RM_CLIENT_HEALTH_GEN ${RM_CLIENT_GEN_DIR}/grpc/health/v1/health.pb-c.c
                         ${RM_CLIENT_GEN_DIR}/grpc/health/v1/health.pb-c.h)
add_custom_command(
  OUTPUT ${RM_CLIENT_HEALTH_GEN}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${RM_CLIENT_GEN_DIR}
  COMMAND ${PROTOC_C} -I${GRPC_PROTO_DIR} --c_out=${RM_CLIENT_GEN_DIR}
          ${GRPC_PROTO_DIR}/grpc/health/v1/health.proto
  DEPENDS ${GRPC_PROTO_DIR}/grpc/health/v1/health.proto
  COMMENT "protoc-c grpc/health/v1/health.proto (client)"
  VERBATIM)

# Objects shared by the shared library and the static twin. Generated code is compiled
# without our warnings; only rmclient.h's RM_CLIENT_API symbols are exported.
add_library(rm_client_health_obj OBJECT ${RM_CLIENT_GEN_DIR}/grpc/health/v1/health.pb-c.c)
target_include_directories(rm_client_health_obj PRIVATE ${RM_CLIENT_GEN_DIR})
target_link_libraries(rm_client_health_obj PRIVATE PkgConfig::PROTOBUFC)
set_target_properties(rm_client_health_obj PROPERTIES POSITION_INDEPENDENT_CODE ON
                      C_VISIBILITY_PRESET hidden)

pkg_check_modules(LIBCRYPTO REQUIRED IMPORTED_TARGET libcrypto) # TLS option checks

add_library(rm_client_obj OBJECT ${RM_CLIENT_DIR}/rmclient.c ${RM_CLIENT_DIR}/rmclient_execute.c
            ${RM_CLIENT_DIR}/rmclient_stream.c ${RM_CLIENT_DIR}/rmclient_check.c)
target_include_directories(rm_client_obj PRIVATE ${RM_CLIENT_DIR} ${RM_CLIENT_GEN_DIR} ${RM_GEN_DIR})
# rm_wire_proto_obj for its headers only: its objects go into the libraries below.
target_link_libraries(rm_client_obj PRIVATE rm_wire_proto_obj rm::common rm::version PkgConfig::GRPC
                      PkgConfig::LIBCRYPTO PkgConfig::PROTOBUFC PkgConfig::JANSSON Threads::Threads)
add_dependencies(rm_client_obj rm_proto rm_client_health_obj) # generated headers first
set_target_properties(rm_client_obj PROPERTIES POSITION_INDEPENDENT_CODE ON
                      C_VISIBILITY_PRESET hidden)
rm_warnings(rm_client_obj)

set(RM_CLIENT_PUBLIC_INCLUDES $<BUILD_INTERFACE:${RM_CLIENT_DIR}> $<BUILD_INTERFACE:${RM_GEN_DIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

# librmclient.so: what is installed. The wire messages (rm_proto) are linked in, so their
# descriptors and __free_unpacked functions come with it, and so are the objects of the wire
# layer's proto-only half and of rm_base beneath it (the manifest reader, the seed metrics
# writer) and the common helpers (rm_common), with hidden visibility: nothing else needs
# installing.
add_library(rm_client SHARED $<TARGET_OBJECTS:rm_client_obj> $<TARGET_OBJECTS:rm_client_health_obj>
            $<TARGET_OBJECTS:rm_wire_proto_obj> $<TARGET_OBJECTS:rm_base_obj>)
target_include_directories(rm_client PUBLIC ${RM_CLIENT_PUBLIC_INCLUDES})
target_link_libraries(rm_client PRIVATE rm_proto rm::common PkgConfig::GRPC PkgConfig::LIBCRYPTO
                      Threads::Threads
                      PUBLIC PkgConfig::JANSSON PkgConfig::PROTOBUFC)
set_target_properties(rm_client PROPERTIES
  OUTPUT_NAME rmclient
  EXPORT_NAME client
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}
  PUBLIC_HEADER ${RM_CLIENT_DIR}/rmclient.h)
add_library(rm::client ALIAS rm_client)

# The same objects as a static library for programs of this tree that also link the
# engine (the CLI): one copy of rm_proto and of the wire layer, so no symbol is defined twice.
add_library(rm_client_static STATIC $<TARGET_OBJECTS:rm_client_obj>
            $<TARGET_OBJECTS:rm_client_health_obj>)
target_include_directories(rm_client_static PUBLIC ${RM_CLIENT_PUBLIC_INCLUDES})
target_link_libraries(rm_client_static PUBLIC rm_wire_proto rm_proto rm::common PkgConfig::GRPC
                      PkgConfig::LIBCRYPTO PkgConfig::JANSSON PkgConfig::PROTOBUFC Threads::Threads)

# The CLI. In-process runs use the engine; remote runs use the library. Its objects also
# make remotemedia-run, the alias of `remotemedia run`.
add_library(rm_cli_obj OBJECT ${RM_CLIENT_DIR}/remotemedia_cli.c ${RM_CLIENT_DIR}/remotemedia_cli_io.c
            ${RM_CLIENT_DIR}/remotemedia_cli_stream.c
            ${RM_CLIENT_DIR}/remotemedia_cli_local.c)
target_link_libraries(rm_cli_obj PUBLIC rm_client_static rm_wire rm_core rm::common rm::version
                      PkgConfig::MEDIA ${MATH_LIB})
rm_warnings(rm_cli_obj)
add_executable(rm_cli ${RM_CLIENT_DIR}/remotemedia_main.c)
set_target_properties(rm_cli PROPERTIES OUTPUT_NAME remotemedia)
target_link_libraries(rm_cli PRIVATE rm_cli_obj)
rm_warnings(rm_cli)
add_executable(remotemedia_run ${RM_CLIENT_DIR}/remotemedia_run.c)
set_target_properties(remotemedia_run PROPERTIES OUTPUT_NAME remotemedia-run)
target_link_libraries(remotemedia_run PRIVATE rm_cli_obj)
rm_warnings(remotemedia_run)

# ---------------------------------------------------------------- install
# The .pc file is relocatable: its prefix is found from where it lies (${pcfiledir}), so
# `cmake --install build --prefix DIR` gives a working DIR/<libdir>/pkgconfig/rmclient.pc.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(RM_CLIENT_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(RM_CLIENT_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(RM_CLIENT_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  file(RELATIVE_PATH _up "/r/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/r")
  string(REGEX REPLACE "/$" "" _up "${_up}")
  set(RM_CLIENT_PC_PREFIX "\${pcfiledir}/${_up}")
  set(RM_CLIENT_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(RM_CLIENT_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${RM_CLIENT_DIR}/rmclient.pc.in ${CMAKE_CURRENT_BINARY_DIR}/rmclient.pc @ONLY)
configure_file(${RM_CLIENT_DIR}/rmclient-config.cmake.in
               ${CMAKE_CURRENT_BINARY_DIR}/rmclient-config.cmake @ONLY)
include(CMakePackageConfigHelpers)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/rmclient-config-version.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)

install(TARGETS rm_client EXPORT rmclient-targets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${RM_GEN_DIR}/remotemedia/v1/data.pb-c.h ${RM_GEN_DIR}/remotemedia/v1/manifest.pb-c.h
              ${RM_GEN_DIR}/remotemedia/v1/metrics.pb-c.h
              ${RM_GEN_DIR}/remotemedia/v1/pipeline_service.pb-c.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/remotemedia/v1)
# manifest.pb-c.h includes the Struct of NodeManifest.params_object
install(FILES ${RM_GEN_DIR}/google/protobuf/struct.pb-c.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/google/protobuf)
install(EXPORT rmclient-targets NAMESPACE rm:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/rmclient)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/rmclient-config.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/rmclient-config-version.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/rmclient)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/rmclient.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(TARGETS rm_cli remotemedia_run RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# ---------------------------------------------------------------- tests
# test_rmclient: the library against a real server (address given by the pytest driver).
add_executable(test_rmclient ${PROJECT_SOURCE_DIR}/tests/integration/c_client/test_rmclient.c)
target_include_directories(test_rmclient PRIVATE ${CUNIT_INCLUDE})
target_link_libraries(test_rmclient PRIVATE rm::client ${CUNIT_LIB} Threads::Threads ${MATH_LIB})
rm_warnings(test_rmclient)

# test_rmclient_stream: the streaming API, driven by test_c_stream.py with the CLI's stream.
add_executable(test_rmclient_stream
               ${PROJECT_SOURCE_DIR}/tests/integration/c_client/test_rmclient_stream.c)
target_include_directories(test_rmclient_stream PRIVATE ${CUNIT_INCLUDE})
target_link_libraries(test_rmclient_stream PRIVATE rm::client ${CUNIT_LIB} ${MATH_LIB})
rm_warnings(test_rmclient_stream)

find_program(RM_CLIENT_PYTHON /usr/bin/python3 NO_DEFAULT_PATH)
if(NOT RM_CLIENT_PYTHON)
  message(FATAL_ERROR "/usr/bin/python3 is needed for the C client tests (scripts/install-deps.sh)")
endif()
set(RM_CLIENT_TEST_ENV
    "RM_SERVER_BIN=$<TARGET_FILE:rm_server>"
    "RM_CLIENT_TEST_BIN=$<TARGET_FILE:test_rmclient>"
    "RM_CLI_BIN=$<TARGET_FILE:rm_cli>"
    "RM_CLIENT_STREAM_TEST_BIN=$<TARGET_FILE:test_rmclient_stream>"
    "PYTHONPATH=${RM_PY_GEN_DIR}:${PROJECT_SOURCE_DIR}/tests/integration"
    "PYTHONDONTWRITEBYTECODE=1"
    "RM_BUILD_DIR=${CMAKE_BINARY_DIR}"
    "RM_SANITIZE=${RM_SANITIZE}"
    "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/integration/c_client/lsan.supp:print_suppressions=0")
set(RM_CLIENT_PYTEST ${RM_CLIENT_PYTHON} -m pytest -q -p no:cacheprovider
    ${PROJECT_SOURCE_DIR}/tests/integration/c_client/test_c_client.py)
set(RM_CLIENT_STREAM_PYTEST ${RM_CLIENT_PYTHON} -m pytest -q -p no:cacheprovider
    ${PROJECT_SOURCE_DIR}/tests/integration/c_client/test_c_stream.py)
set(RM_CLIENT_HOSTILE_PYTEST ${RM_CLIENT_PYTHON} -m pytest -q -p no:cacheprovider
    ${PROJECT_SOURCE_DIR}/tests/integration/c_client/test_c_hostile.py)
if(RM_VALGRIND)
  # pytest itself is not run under valgrind: the server, the test binary and the CLI are.
  rm_valgrind_command(_vg)
  list(APPEND RM_CLIENT_TEST_ENV "RM_SERVER_WRAPPER=${_vg}" "RM_CLIENT_WRAPPER=${_vg}"
       "RM_TEST_START_TIMEOUT=120" "RM_TEST_STOP_TIMEOUT=180")
  add_test(NAME client.c_client COMMAND ${RM_CLIENT_PYTEST})
  set_tests_properties(client.c_client PROPERTIES TIMEOUT 1800 ENVIRONMENT "${RM_CLIENT_TEST_ENV}")
  add_test(NAME client.c_stream COMMAND ${RM_CLIENT_STREAM_PYTEST})
  set_tests_properties(client.c_stream PROPERTIES TIMEOUT 1800 ENVIRONMENT "${RM_CLIENT_TEST_ENV}")
  add_test(NAME client.c_hostile COMMAND ${RM_CLIENT_HOSTILE_PYTEST})
  set_tests_properties(client.c_hostile PROPERTIES TIMEOUT 1800 ENVIRONMENT "${RM_CLIENT_TEST_ENV}")
else()
  rm_add_test(client.c_client COMMAND ${RM_CLIENT_PYTEST} TIMEOUT 300
              ENVIRONMENT "${RM_CLIENT_TEST_ENV}")
  rm_add_test(client.c_stream COMMAND ${RM_CLIENT_STREAM_PYTEST} TIMEOUT 300
              ENVIRONMENT "${RM_CLIENT_TEST_ENV}")
  rm_add_test(client.c_hostile COMMAND ${RM_CLIENT_HOSTILE_PYTEST} TIMEOUT 300
              ENVIRONMENT "${RM_CLIENT_TEST_ENV}")
endif()
