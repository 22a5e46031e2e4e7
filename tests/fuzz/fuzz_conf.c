/* libFuzzer target: config text through the INI loader and final checks.
 * Any input must give either a configuration or one error line; never a
 * crash, a leak or an empty message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/conf.h"

/* assert() vanishes under NDEBUG; fuzzing checks must not */
#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "check failed: %s (%s:%d)\n", #x, __FILE__, __LINE__);                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct conf c;
    char err[512] = "";
    conf_init(&c);
    if (conf_load_string(&c, text, "fuzz.conf", err, sizeof err) < 0 ||
        conf_finish(&c, err, sizeof err) < 0) {
        CHECK(err[0] != '\0');
        CHECK(!strchr(err, '\n'));
    }
    conf_free(&c);
    free(text);
    return 0;
}
