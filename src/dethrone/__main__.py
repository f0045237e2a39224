from dethrone.cli import console

console()
