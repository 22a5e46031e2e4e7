/* preforkd: the stock binary, the library's pfd_main() with the built-in
 * handlers and whatever modules the configuration loads. */
#include "workers/preforkd.h"

int main(int argc, char **argv) {
    return pfd_main(argc, argv, NULL);
}
