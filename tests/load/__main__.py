from tests.load.run import main

main()
