# run_tsan.cmake - the tsan.engine test: configures a ThreadSanitizer build of this tree in
# BINARY_DIR (once; later runs rebuild what changed), builds rm_core and tsan_pipelines only,
# and runs tsan_pipelines with TSan halting on the first report.
#   cmake -DSOURCE_DIR=<repo> -DBINARY_DIR=<dir> -DC_COMPILER=<cc> -P run_tsan.cmake
foreach(var SOURCE_DIR BINARY_DIR C_COMPILER)
  if(NOT ${var})
    message(FATAL_ERROR "run_tsan.cmake: ${var} is not set")
  endif()
endforeach()

function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "tsan.engine: ${what} failed (${rc}):\n${out}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

if(NOT EXISTS ${BINARY_DIR}/CMakeCache.txt)
  step(configure ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BINARY_DIR} -DCMAKE_C_COMPILER=${C_COMPILER}
       -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRM_SANITIZE=thread -DRM_WERROR=ON)
endif()
step(build ${CMAKE_COMMAND} --build ${BINARY_DIR} --target tsan_pipelines -j2)
set(ENV{TSAN_OPTIONS} "halt_on_error=1 exitcode=66 second_deadlock_stack=1")
step(run ${BINARY_DIR}/tests/tsan/tsan_pipelines 4 2)
message(STATUS "${step_output}")
