/* cmd_shard.c - `calpa shard MODEL --mesh RxC ...`: the intra-op pass on one
 * device mesh (stub until the pass lands). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const char USAGE[] =
    "usage: calpa shard MODEL --mesh RxC [options]\n";

int cmd_shard(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE, stdout);
            return 0;
        }
    return cli_usage_error(USAGE, "shard: not implemented yet");
}
