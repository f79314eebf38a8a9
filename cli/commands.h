/* commands.h — one function per `lumos` command (cli/cmd_*.c), each taking
 * the arguments after its name and returning the process's exit code. */
#ifndef LUMOS_CLI_COMMANDS_H
#define LUMOS_CLI_COMMANDS_H

int cmd_convert(int argc, char **argv);
int cmd_dereflect(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_train(int argc, char **argv);

#endif
