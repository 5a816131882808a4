# cmake -P script run by CTest; see CMakeLists.txt beside it.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(RUN_OUT "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

foreach(f include/anvil/anvil.h include/anvil/anvil.hpp lib/libanvil.a lib/cmake/anvil/anvilConfig.cmake
          lib/pkgconfig/anvil.pc)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "install is missing ${f}")
  endif()
endforeach()

# 1. CMake package config
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples -B ${WORK_DIR}/cmake-build -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-build)
run(${WORK_DIR}/cmake-build/model_info ${MODEL})
if(NOT RUN_OUT MATCHES "architecture: gpt2" OR NOT RUN_OUT MATCHES "tensors: 0")
  message(FATAL_ERROR "unexpected output from model_info:\n${RUN_OUT}")
endif()
execute_process(COMMAND ${WORK_DIR}/cmake-build/model_info ${WORK_DIR}/does-not-exist.gguf
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "does-not-exist")
  message(FATAL_ERROR "a missing file should fail with a message naming it (rc ${rc}): ${err}")
endif()

# 2. pkg-config, from C
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} ${prefix}/lib/pkgconfig)
run(${PKG_CONFIG} --cflags anvil)
string(STRIP "${RUN_OUT}" cflags)
run(${PKG_CONFIG} --static --libs anvil)
string(STRIP "${RUN_OUT}" libs)
separate_arguments(cflags UNIX_COMMAND "${cflags}")
separate_arguments(libs UNIX_COMMAND "${libs}")
run(cc ${cflags} ${SOURCE_DIR}/examples/model_info_c.c -o ${WORK_DIR}/model_info_c ${libs})
run(${WORK_DIR}/model_info_c ${MODEL})
if(NOT RUN_OUT MATCHES "architecture: gpt2")
  message(FATAL_ERROR "unexpected output from model_info_c:\n${RUN_OUT}")
endif()
message(STATUS "install + embed OK")
