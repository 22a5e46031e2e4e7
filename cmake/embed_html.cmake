# Turns an HTML page into a C header, at build time (cmake -P):
#   cmake -DIN=page.html -DOUT=page_html.h -DNAME=page -P embed_html.cmake
# The header holds
#   static const char NAME_html[]   the page's bytes, NUL-terminated
#   #define NAME_SCRIPT_HASH       "'sha256-...'" of the page's one <script>
#   #define NAME_STYLE_HASH        "'sha256-...'" of its one <style>
# The hashes are the CSP source expressions that let that inline script and
# style run and nothing else (CSP level 2: base64 of the SHA-256 of the
# element's text). The page must have exactly one plain <script> and one
# plain <style> element, and no NUL byte.
cmake_minimum_required(VERSION 3.18)

# The base64 text of the bytes a hex string stands for.
function(hex_to_base64 hex out)
  set(abc "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
  string(LENGTH "${hex}" n)
  set(b64 "")
  set(i 0)
  while(i LESS n)
    math(EXPR left "${n} - ${i}")
    if(left GREATER 6)
      set(left 6)
    endif()
    string(SUBSTRING "${hex}" ${i} ${left} group)
    # pad the group to three bytes; what the padding made becomes '='
    set(pad "")
    if(left EQUAL 2)
      set(group "${group}0000")
      set(pad "==")
    elseif(left EQUAL 4)
      set(group "${group}00")
      set(pad "=")
    endif()
    math(EXPR v "0x${group}")
    string(LENGTH "${pad}" npad)
    math(EXPR keep "4 - ${npad}")
    foreach(shift 18 12 6 0)
      if(keep GREATER 0)
        math(EXPR idx "(${v} >> ${shift}) & 63")
        string(SUBSTRING "${abc}" ${idx} 1 c)
        string(APPEND b64 "${c}")
        math(EXPR keep "${keep} - 1")
      endif()
    endforeach()
    string(APPEND b64 "${pad}")
    math(EXPR i "${i} + 6")
  endwhile()
  set(${out} "${b64}" PARENT_SCOPE)
endfunction()

# The CSP hash source of the text of the one <tag> element of page.
function(element_hash page tag out)
  string(FIND "${page}" "<${tag}>" open)
  string(FIND "${page}" "<${tag}>" last REVERSE)
  string(FIND "${page}" "</${tag}>" close)
  if(open LESS 0 OR close LESS open OR NOT open EQUAL last)
    message(FATAL_ERROR "${IN}: needs exactly one <${tag}> ... </${tag}> element")
  endif()
  string(LENGTH "<${tag}>" taglen)
  math(EXPR start "${open} + ${taglen}")
  math(EXPR len "${close} - ${start}")
  string(SUBSTRING "${page}" ${start} ${len} text)
  string(SHA256 digest "${text}")
  hex_to_base64("${digest}" b64)
  set(${out} "'sha256-${b64}'" PARENT_SCOPE)
endfunction()

file(READ "${IN}" page)
file(READ "${IN}" hex HEX)
# text stops at a NUL byte: then the two readings differ in length
string(LENGTH "${page}" nchars)
string(LENGTH "${hex}" nhex)
math(EXPR nhex "${nhex} / 2")
if(NOT nchars EQUAL nhex)
  message(FATAL_ERROR "${IN}: has a NUL byte")
endif()
element_hash("${page}" script script_hash)
element_hash("${page}" style style_hash)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# one line of C for each line of the page
string(REPLACE "0x0a," "0x0a,\n" bytes "${bytes}")
string(TOUPPER "${NAME}" upper)
get_filename_component(in_name "${IN}" NAME)
file(WRITE "${OUT}"
  "/* Generated from ${in_name} by cmake/embed_html.cmake: do not edit. */\n"
  "static const char ${NAME}_html[] = {\n${bytes}0x00};\n"
  "#define ${upper}_SCRIPT_HASH \"${script_hash}\"\n"
  "#define ${upper}_STYLE_HASH \"${style_hash}\"\n")
