# Debian's civetweb CMake config references files it does not ship; find the
# header and library directly.
find_path(CIVETWEB_INCLUDE_DIR civetweb.h REQUIRED)
find_library(CIVETWEB_LIBRARY civetweb REQUIRED)
# prometheus-cpp's config may already have defined the target (its pull
# library depends on civetweb); (re)point it at what is really installed.
if(NOT TARGET civetweb::civetweb)
  add_library(civetweb::civetweb UNKNOWN IMPORTED)
endif()
set_target_properties(civetweb::civetweb PROPERTIES
  IMPORTED_LOCATION ${CIVETWEB_LIBRARY}
  INTERFACE_INCLUDE_DIRECTORIES ${CIVETWEB_INCLUDE_DIR})
