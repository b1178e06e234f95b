export const commands: import("yargs").CommandModule<any, any>[] = [];
