/* kv-server: the key-value service as a program of its own. pfd_main runs
 * the whole server (command line, configuration, master and workers) with
 * kv.c's handlers beside the built-in ones:
 *
 *   kv-server --config kv.conf
 */
#include <preforkd.h>

extern const pfd_app preforkd_module; /* kv.c */

int main(int argc, char **argv) {
    return pfd_main(argc, argv, &preforkd_module);
}
