# dtmsi_compile(<target> SOURCE <file.msi>
#               [OUTPUT_DIR <dir>] [OUTPUTS <name>...] [INCLUDE_DIRS <dir>...] [OPTIONS <flag>...])
#
# Runs `dtmsi compile` on <file.msi> whenever it, a file it includes or its
# base tree changes (dtmsi writes a depfile listing every input it read), and
# adds a custom target <target> that builds the outputs. Sets <target>_OUTPUTS
# (absolute paths) and <target>_OUTPUT_DIR in the caller's scope.
#
#   SOURCE        the top-level .msi file (relative to the current source dir)
#   OUTPUT_DIR    where the outputs go (default: <current binary dir>/<target>)
#   OUTPUTS       the output file names, which CMake must know in advance
#                 (default: those of a machine without partitions: system.dtb
#                 system.dts allocation.json system_msi.c system_msi.h
#                 system_msi.py; with partitions add <partition>.dtb and so on)
#   INCLUDE_DIRS  passed as -I, searched after the including file's directory
#   OPTIONS       more flags for `dtmsi compile` (-Werror, -Wno-W612, --emit ...)
#
# dtmsi leaves an output whose bytes did not change untouched. Under the Ninja
# generators (custom commands there have restat = 1), targets built from the
# outputs are then not rebuilt. The Makefile generators build correctly but not
# minimally: their rules `cmake -E touch_nocreate` every output but the first
# after the command, so dependants rebuild after every dtmsi run. Needs CMake
# 3.20 (DEPFILE).

function(dtmsi_compile target)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "SOURCE;OUTPUT_DIR" "OUTPUTS;INCLUDE_DIRS;OPTIONS")
  if(NOT ARG_SOURCE)
    message(FATAL_ERROR "dtmsi_compile(${target}): SOURCE <file.msi> is required")
  endif()
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "dtmsi_compile(${target}): unknown arguments: ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT DTMSI_EXECUTABLE)
    find_program(DTMSI_EXECUTABLE dtmsi REQUIRED)
  endif()
  get_filename_component(source "${ARG_SOURCE}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT ARG_OUTPUT_DIR)
    set(ARG_OUTPUT_DIR "${CMAKE_CURRENT_BINARY_DIR}/${target}")
  endif()
  get_filename_component(outdir "${ARG_OUTPUT_DIR}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")
  if(NOT ARG_OUTPUTS)
    set(ARG_OUTPUTS system.dtb system.dts allocation.json system_msi.c system_msi.h system_msi.py)
  endif()
  list(TRANSFORM ARG_OUTPUTS PREPEND "${outdir}/" OUTPUT_VARIABLE outputs)
  set(include_flags)
  foreach(dir IN LISTS ARG_INCLUDE_DIRS)
    get_filename_component(dir "${dir}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND include_flags -I "${dir}")
  endforeach()
  # Ninja wants the depfile's rule to name the edge's first output: list the
  # outputs as targets (-MT) in the order CMake has them.
  set(target_flags)
  foreach(output IN LISTS outputs)
    list(APPEND target_flags -MT "${output}")
  endforeach()
  set(depfile "${CMAKE_CURRENT_BINARY_DIR}/${target}.d")
  add_custom_command(
    OUTPUT ${outputs}
    COMMAND "${DTMSI_EXECUTABLE}" compile "${source}" -o "${outdir}" -M "${depfile}"
            ${target_flags} ${include_flags} ${ARG_OPTIONS}
    DEPENDS "${source}"
    DEPFILE "${depfile}"
    COMMENT "dtmsi ${ARG_SOURCE}"
    VERBATIM)
  add_custom_target(${target} ALL DEPENDS ${outputs})
  set(${target}_OUTPUTS ${outputs} PARENT_SCOPE)
  set(${target}_OUTPUT_DIR "${outdir}" PARENT_SCOPE)
endfunction()
