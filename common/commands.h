/* commands.h - every subcommand of bin/calpa; main.c dispatches on these. */
#ifndef CALPA_COMMANDS_H
#define CALPA_COMMANDS_H

int cmd_model(int argc, char **argv);   /* models/cmd_model.c */
int cmd_cluster(int argc, char **argv); /* planner/cmd_cluster.c */
int cmd_profile(int argc, char **argv); /* planner/cmd_profile.c */
int cmd_profile_import_nccl_tests(int argc, char **argv); /* planner/cmd_ncclimport.c */
int cmd_shard(int argc, char **argv);   /* planner/cmd_shard.c */
int cmd_plan(int argc, char **argv);   /* planner/cmd_plan.c */
int cmd_sim_collective(int argc, char **argv); /* sim/cmd_sim_collective.c */
int cmd_sim(int argc, char **argv);        /* sim/cmd_sim.c */
int cmd_validate(int argc, char **argv);   /* sim/cmd_validate.c */
int cmd_sweep(int argc, char **argv);  /* planner/cmd_sweep.c */

int cmd_exec(int argc, char **argv);       /* exec/cmd_exec.c */
int cmd_compare(int argc, char **argv);    /* exec/cmd_compare.c */
int cmd_calibrate(int argc, char **argv);  /* exec/cmd_calibrate.c */

#endif
